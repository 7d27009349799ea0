"""Feature-set suites from BOUNDS: finite, non-null and bounded after the warm-up."""

from __future__ import annotations

import sys
import types

import polars as pl
import pytest

from factory.data import feature_quality
from factory.data.feature_quality import (
    after_warm_up,
    feature_checks,
    feature_suite,
    validate,
    validate_features,
    validate_side_table,
)
from factory.data.schema import DataQualityError
from factory.data.side_tables import normalise_side_table
from factory.data.sources import synthetic_bars
from feature_sets import FeatureSet, build_features
from feature_sets import registry as feature_registry


def _build(bars: pl.DataFrame, inputs, window: int = 14) -> pl.DataFrame:
    """A tiny RSI-like oscillator in [0, 100] and a non-negative volatility."""
    change = pl.col("close").diff()
    up = change.clip(lower_bound=0).rolling_mean(window)
    down = (-change).clip(lower_bound=0).rolling_mean(window)
    return bars.select(
        "ts",
        (pl.col("close") / pl.col("close").shift(1)).log().alias("ret_1"),
        (100 * up / (up + down)).alias("rsi"),
        change.rolling_std(window).alias("vol"),
    )


@pytest.fixture
def toy(monkeypatch) -> str:
    """Register a feature set ``toy`` whose module is defined here."""
    module = types.ModuleType("toy_features")
    module.build = _build
    module.BOUNDS = {r"^rsi$": (0.0, 100.0), r"^vol$": (0.0, None), r"^(rsi|vol)$": (-5.0, None)}
    monkeypatch.setitem(sys.modules, "toy_features", module)
    monkeypatch.setitem(feature_registry.FEATURE_SETS, "toy",
                        FeatureSet("toy_features", ("bars",), "a test feature set"))
    return "toy"


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synthetic_bars(("AAA",), n_bars=120, seed=3)


def _set(frame: pl.DataFrame, column: str, rows: list[int], value: float | None):
    row = pl.int_range(pl.len())
    return frame.with_columns(
        pl.when(row.is_in(rows)).then(pl.lit(value, dtype=pl.Float64))
        .otherwise(pl.col(column)).alias(column))


def test_a_good_feature_frame_passes_and_its_warm_up_is_not_checked(toy, bars):
    features = build_features(toy, bars)
    assert features["rsi"].null_count() > 0  # the warm-up
    validate_features(toy, features, "synthetic")
    assert after_warm_up(features).height == features.height - 14


def test_rsi_150_and_an_inf_after_warm_up_fail_naming_set_column_and_rows(toy, bars):
    features = build_features(toy, bars)
    bad = _set(_set(features, "rsi", [40, 41], 150.0), "vol", [60], float("inf"))
    bad = _set(bad, "ret_1", [70], None)
    with pytest.raises(DataQualityError) as caught:
        validate_features(toy, bad, "lake v3")
    message = str(caught.value)
    lines = message.splitlines()
    assert "feature set 'toy' on lake v3" in lines[0] and "3 data quality check(s)" in lines[0]
    ts = bad["ts"].dt.strftime("%Y-%m-%d")
    [rsi] = [line for line in lines if "column 'rsi'" in line]
    assert "2 rows fail 'rsi in [0, 100]'" in rsi and f"{ts[40]}, {ts[41]}" in rsi
    [vol] = [line for line in lines if "column 'vol'" in line]  # once, not also as a bound
    assert "'vol is finite (no NaN or infinity)'" in vol and ts[60] in vol
    [ret] = [line for line in lines if "column 'ret_1'" in line]
    assert "'ret_1 is not null'" in ret and ts[70] in ret
    assert caught.value.source == "feature set 'toy' on lake v3"  # checks in column order
    assert caught.value.column == "ret_1"


def test_several_assets_are_one_batch_and_rows_name_the_symbol(toy, bars):
    good = build_features(toy, bars).with_columns(symbol=pl.lit("AAA"))
    other = synthetic_bars(("BBB",), n_bars=80, seed=4)
    bad = _set(build_features(toy, other), "rsi", [50], -1.0).with_columns(symbol=pl.lit("BBB"))
    with pytest.raises(DataQualityError, match=r"rsi in \[0, 100\]' \(e\.g\. BBB at "):
        validate_features(toy, pl.concat([good, bad]), "lake v1")


def test_a_frame_without_a_complete_row_says_why(toy, bars):
    with pytest.raises(DataQualityError, match="null on every row: rsi, vol"):
        validate_features(toy, build_features(toy, bars.head(10)), "synthetic")


def test_bounds_are_searched_regexes_and_several_matches_intersect():
    bounds = {r"_sin$": (-1.0, 1.0), r"^x": (0.0, None), r"^x_sin$": (None, 0.5)}
    rules = {c.rule for c in feature_checks(["ts", "x_sin", "y"], bounds)}
    assert "x_sin in [0, 0.5]" in rules
    assert {"y is not null", "y is finite (no NaN or infinity)"} <= rules
    assert not any(rule.startswith("y ") and "[" in rule for rule in rules)


def test_a_registered_feature_set_passes_on_clean_bars():
    bars = synthetic_bars(("AAA",), n_bars=200, seed=5)
    validate_features("raw_ohlcv", build_features("raw_ohlcv", bars), "synthetic")


def test_side_table_suites_are_built_once_per_process():
    rows = pl.DataFrame({"symbol": ["AAA", "AAA"], "ts": ["2021-01-01", "2021-01-02"],
                         "score": [0.1, -1.0]})
    table = normalise_side_table(rows, "sentiment", "frame")
    validate_side_table(table, "sentiment", "frame")
    built = len(feature_quality._suites)
    validate_side_table(table, "sentiment", "frame")
    assert len(feature_quality._suites) == built
    nan = table.with_columns(score=pl.Series([0.1, float("nan")]))
    with pytest.raises(DataQualityError, match=r"'score is finite .*\(e\.g\. row 1\)"):
        validate_side_table(nan, "sentiment", "frame")


def test_a_bound_allows_floating_point_rounding_only(toy, bars):
    features = build_features(toy, bars)
    validate_features(toy, _set(features, "rsi", [30], 100.0 + 1e-12), "synthetic")
    with pytest.raises(DataQualityError, match="rsi in"):
        validate_features(toy, _set(features, "rsi", [30], 100.001), "synthetic")


def test_a_column_an_asset_does_not_provide_is_checked_on_the_others_only(toy, bars):
    full = build_features(toy, bars).with_columns(symbol=pl.lit("AAA"))
    short = build_features(toy, synthetic_bars(("BBB",), n_bars=60, seed=6)).with_columns(
        symbol=pl.lit("BBB"), rsi=pl.lit(None, dtype=pl.Float64))
    absent = {"BBB": ["rsi"]}
    validate(feature_suite(toy, pl.concat([full, short]), "lake v1", absent=absent))
    bad = _set(full, "rsi", [50], 150.0)
    with pytest.raises(DataQualityError, match=r"1 row fails 'rsi in \[0, 100\]' \(e\.g\. AAA"):
        validate(feature_suite(toy, pl.concat([bad, short]), "lake v1", absent=absent))
