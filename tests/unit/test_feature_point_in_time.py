"""Property: for every feature set, changing any data after time t leaves every feature at or
before t unchanged (bars, the universe's other assets, sentiment and on-chain rows alike)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factory.data.sources import synthetic_bars
from feature_sets import FEATURE_SETS, FeatureInputs, build_features, feature_set

N_BARS = 320
BARS = synthetic_bars(symbols=("AAA", "BBB"), n_bars=N_BARS, seed=11, start="2015-01-01")
OWN = BARS.filter(pl.col("symbol") == "AAA")


def _side_rows(columns: dict[str, tuple[float, float]], seed: int) -> pl.DataFrame:
    """Irregular rows (about two a day, at odd times) over the bars' span."""
    rng = np.random.default_rng(seed)
    start = OWN["ts"][0]
    offsets = np.sort(rng.uniform(0, N_BARS + 2, size=2 * N_BARS))
    ts = [start + timedelta(days=float(d)) for d in offsets]
    values = {name: rng.uniform(low, high, size=len(ts)) for name, (low, high) in columns.items()}
    return pl.DataFrame({"ts": ts, **values}).with_columns(pl.col("ts").cast(pl.Datetime("us")))


SENTIMENT = _side_rows({"score": (-1.0, 1.0), "count": (1.0, 50.0)}, seed=1)
ONCHAIN = _side_rows({"active_addresses": (1e5, 2e5), "transaction_count": (2e5, 4e5),
                      "exchange_inflow": (10.0, 100.0), "exchange_outflow": (10.0, 100.0)}, seed=2)


def _inputs(name: str, bars: pl.DataFrame, sentiment: pl.DataFrame, onchain: pl.DataFrame):
    needs = feature_set(name).needs
    return FeatureInputs(
        symbol="AAA", calendar="equity",
        panel=bars if "panel" in needs else None,
        sentiment=sentiment if "sentiment" in needs else None,
        onchain=onchain if "onchain" in needs else None)


def _build(name: str, bars: pl.DataFrame, sentiment: pl.DataFrame, onchain: pl.DataFrame):
    own = bars.filter(pl.col("symbol") == "AAA")
    return build_features(name, own, None, _inputs(name, bars, sentiment, onchain))


def _perturb_after(frame: pl.DataFrame, cutoff, factor: float, columns: list[str]) -> pl.DataFrame:
    later = pl.col("ts") > cutoff
    return frame.with_columns(
        [pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c) for c in columns])


def _assert_same_up_to(before: pl.DataFrame, after: pl.DataFrame, cutoff, name: str) -> None:
    left = before.filter(pl.col("ts") <= cutoff)
    right = after.filter(pl.col("ts") <= cutoff)
    assert left["ts"].to_list() == right["ts"].to_list()
    for column in left.columns[1:]:
        a, b = left[column].to_numpy(), right[column].to_numpy()
        np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=f"{name}.{column} looked ahead")


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=5, max_value=N_BARS - 5),
       factor=st.floats(min_value=0.5, max_value=2.0).filter(lambda f: abs(f - 1) > 1e-3),
       truncate=st.booleans())
def test_no_feature_reads_the_future(name, cut, factor, truncate):
    cutoff = OWN["ts"][cut]
    base = _build(name, BARS, SENTIMENT, ONCHAIN)
    if truncate:  # the future removed outright
        changed = _build(name, BARS.filter(pl.col("ts") <= cutoff),
                         SENTIMENT.filter(pl.col("ts") <= cutoff),
                         ONCHAIN.filter(pl.col("ts") <= cutoff))
    else:  # the future rewritten: prices, volumes, scores, metrics, and a row just after t
        bars = _perturb_after(BARS, cutoff, factor, ["open", "high", "low", "close", "volume"])
        extra = SENTIMENT.head(1).with_columns(ts=pl.lit(cutoff + timedelta(microseconds=1)),
                                               score=pl.lit(-0.99))
        sentiment = pl.concat([_perturb_after(SENTIMENT, cutoff, factor, ["count"]), extra])
        onchain = _perturb_after(ONCHAIN, cutoff, factor, [c for c in ONCHAIN.columns[1:]])
        changed = _build(name, bars, sentiment.sort("ts"), onchain)
    _assert_same_up_to(base, changed, cutoff, name)
