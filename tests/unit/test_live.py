"""Live evaluation: incremental statistics equal `trading_metrics` on the whole series, and a
real trained model's paper returns equal the timing conventions computed by hand, whether
built in one call or snapshot by snapshot.

The model is trained for real (``fit.evaluate_spec`` on a feature cache in a temporary
folder); the statistics round-trip through a real Delta table.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from factory.config import load_config
from factory.data.frequency import BarFrequency
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.evaluation.live import (
    METRIC_NAMES,
    ROW_SCHEMA,
    LiveStats,
    bars_per_day,
    live_returns,
    rolling_window_bars,
)
from factory.evaluation.metrics import trading_metrics
from factory.grid import expand
from factory.training.datasets import DatasetRef, cache_features
from factory.training.fit import evaluate_spec
from factory.training.predictor import Predictor

SYMBOLS = ("AAA", "BBB")
START = datetime(2021, 3, 1)
COST_BPS = 5.0


def _series(kind: str) -> np.ndarray:
    """Return series with NaNs, zeros, drawdowns and recoveries; or edge cases."""
    rng = np.random.default_rng(11)
    if kind == "long":
        r = rng.normal(0.0004, 0.01, 700)
        r[rng.random(700) < 0.05] = np.nan
        r[rng.random(700) < 0.05] = 0.0
        return r
    if kind == "short":
        return rng.normal(-0.001, 0.02, 45)
    if kind == "gains_only":
        return np.abs(rng.normal(0.0, 0.01, 12))
    return np.array([0.003])


def _in_pieces(returns: np.ndarray, seed: int, window_bars: int = 90) -> LiveStats:
    """Feed ``returns`` to `LiveStats` in random-sized pieces (empty ones included)."""
    rng = np.random.default_rng(seed)
    stats = LiveStats.empty(window_bars)
    start = 0
    while start < returns.size:
        stop = min(returns.size, start + int(rng.integers(0, 40)))
        stats = stats.update(returns[start:stop], START + timedelta(days=stop))
        start = stop
    return stats


@pytest.mark.parametrize("kind", ["long", "short", "gains_only", "one"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pieces_give_the_metrics_of_the_whole_series(kind, seed):
    returns = _series(kind)
    live = _in_pieces(returns, seed).metrics(periods_per_year=252.0, bars_per_day=1.0)
    whole = trading_metrics(returns, 252.0)
    expected = {f"live_{k}": whole[k] for k in ("n_obs", "sharpe", "sortino", "total_return",
                                                  "max_drawdown", "recovery_bars", "win_rate",
                                                  "profit_factor")}
    expected |= {f"live_rolling_sharpe_{d}d": whole[f"rolling_sharpe_{d}"] for d in (30, 60, 90)}
    assert list(live) == list(METRIC_NAMES)
    assert live == pytest.approx(expected, rel=1e-9, abs=1e-15, nan_ok=True)
    assert live["live_recovery_bars"] == expected["live_recovery_bars"]


def test_no_returns_give_nan_metrics_and_windows_follow_the_bar_frequency():
    empty = LiveStats.empty(90).metrics(252.0, 1.0)
    assert empty["live_n_obs"] == 0.0
    assert all(math.isnan(v) for k, v in empty.items() if k != "live_n_obs")
    hourly = BarFrequency(3600, "1h", "equity", 252.0 * 7)
    assert bars_per_day(hourly) == 7.0
    assert [rolling_window_bars(d, 7.0) for d in (30, 60, 90)] == [210, 420, 630]
    assert rolling_window_bars(30, 0.01) == 2
    r = _series("long")
    r = r[np.isfinite(r)]
    stats = LiveStats.empty(rolling_window_bars(90, 2.0)).update(r, START)
    metrics = stats.metrics(504.0, 2.0)
    for days in (30, 90):
        assert metrics[f"live_rolling_sharpe_{days}d"] == pytest.approx(
            trading_metrics(r[-2 * days:], 504.0)["sharpe"], rel=1e-9)
    short = LiveStats.empty(180).update(r[:100], START).metrics(504.0, 2.0)
    assert np.isfinite(short["live_rolling_sharpe_30d"])
    assert math.isnan(short["live_rolling_sharpe_60d"])  # 120 bars needed
    with pytest.raises(ValueError, match="270 bars exceeds the 180 returns kept"):
        stats.metrics(504.0, 3.0)


def test_update_refuses_to_count_bars_twice():
    stats = LiveStats.empty(30).update(np.array([0.01, -0.02]), START)
    with pytest.raises(ValueError, match="counted already"):
        stats.update(np.array([0.01]), START)
    with pytest.raises(ValueError, match="counted already"):
        stats.update(np.array([]), START - timedelta(days=1))
    with pytest.raises(ValueError, match="last_ts .* is required"):
        stats.update(np.array([0.01]), None)
    assert stats.update(np.array([np.nan]), None) == stats
    assert stats.update(np.array([]), START + timedelta(days=1)).last_ts == START + timedelta(
        days=1)
    with pytest.raises(ValueError, match="window_bars must be at least 2"):
        LiveStats.empty(1)


def test_a_row_round_trips_through_a_delta_table(tmp_path):
    stats = _in_pieces(_series("long"), seed=4)
    lake = Lake(tmp_path / "lake")
    lake.append_table("live_stats", pl.DataFrame([{"model_name": "m1", **stats.to_row()}]))
    empty = LiveStats.empty(90)
    lake.append_table("live_stats", pl.DataFrame([{"model_name": "m2", **empty.to_row()}],
                                                 schema_overrides=ROW_SCHEMA))
    rows = {row["model_name"]: row for row in lake.read_table("live_stats").iter_rows(named=True)}
    assert LiveStats.from_row(rows["m1"]) == stats
    assert LiveStats.from_row(rows["m2"]) == empty
    more = np.array([0.02, -0.01, 0.0])
    later = START + timedelta(days=1000)
    assert (LiveStats.from_row(rows["m1"]).update(more, later).metrics(252.0, 1.0)
            == stats.update(more, later).metrics(252.0, 1.0))
    with pytest.raises(ValueError, match=r"lacks \['recent'\]"):
        LiveStats.from_row({k: v for k, v in rows["m1"].items() if k != "recent"})


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Predictor, pl.DataFrame]:
    """A lightgbm model on raw OHLCV features, really trained on planted-signal bars."""
    root = tmp_path_factory.mktemp("live")
    config = load_config("smoke")
    spec = next(s for s in expand(config, SYMBOLS).specs
                if s.arch == "lightgbm" and s.lookback == 7)
    bars = synthetic_bars(symbols=SYMBOLS, n_bars=300, seed=5, signal=0.5)
    ref = DatasetRef(root / "cache", 1, SYMBOLS, 365.0, "1d")
    ref.bars_path().parent.mkdir(parents=True)
    bars.write_parquet(ref.bars_path())
    cache_features(ref, spec.feature_set, spec.feature_params)
    outcome = evaluate_spec(spec, ref, root / "model")
    assert outcome.status == "FINISHED"
    return Predictor(Path(outcome.model_dir)), bars


def _by_hand(predictor: Predictor, bars: pl.DataFrame, price: str) -> pl.DataFrame:
    """Position_t * (p[t+2] / p[t+1] - 1) - cost * |position_t - position_{t-1}|, per asset,
    then the mean over the assets at each decision bar (flat before the first window)."""
    scored = pl.concat([bars, predictor.predict_bars(bars)], how="horizontal")
    rows = []
    for symbol in SYMBOLS:
        asset = scored.filter(pl.col("symbol") == symbol).sort("ts")
        p, pos, ts = asset[price].to_list(), asset["position"].to_list(), asset["ts"].to_list()
        for t in range(len(p) - 2):
            if math.isnan(pos[t]):
                continue
            before = pos[t - 1] if t > 0 and not math.isnan(pos[t - 1]) else 0.0
            ret = pos[t] * (p[t + 2] / p[t + 1] - 1) - COST_BPS / 1e4 * abs(pos[t] - before)
            rows.append({"ts": ts[t], "ret": ret})
    return (pl.DataFrame(rows).group_by("ts")
            .agg(pl.col("ret").mean(), pl.len().alias("n_assets")).sort("ts"))


@pytest.mark.parametrize("price", ["close", "open"])
def test_live_returns_follow_the_timing_conventions(model, price):
    predictor, bars = model
    expected = _by_hand(predictor, bars, price)
    after = bars["ts"].unique().sort()[150]
    got = live_returns(predictor, bars.sample(fraction=1.0, shuffle=True, seed=1), after=after,
                       cost_bps=COST_BPS, execution_price=price)
    want = expected.filter(pl.col("ts") > after)
    assert got.columns == ["ts", "ret", "n_assets"] and got.height == 300 - 151 - 2
    assert got["ts"].to_list() == want["ts"].to_list()
    assert (got["n_assets"] == 2).all() and got["n_assets"].dtype == pl.Int64
    np.testing.assert_allclose(got["ret"], want["ret"], rtol=1e-12, atol=1e-15)
    every = live_returns(predictor, bars, after=None, cost_bps=COST_BPS, execution_price=price)
    assert every["ts"].to_list() == expected["ts"].to_list()
    assert every["ts"].min() == bars["ts"].min() + timedelta(days=predictor.min_bars - 1)


def test_snapshots_on_a_short_tail_equal_one_call(model):
    predictor, bars = model
    times = bars["ts"].unique().sort()
    t0, first_snapshot = times[100], times[160]
    one_call = live_returns(predictor, bars, after=t0, cost_bps=COST_BPS)
    first = live_returns(predictor, bars.filter(pl.col("ts") <= first_snapshot), after=t0,
                         cost_bps=COST_BPS)
    t1 = first["ts"].max()
    assert t1 == times[158] and first["ts"].min() > t0  # t1 needs the bars t1+1 and t1+2
    tail_start = times[times.search_sorted(t1) - predictor.min_bars + 1]
    second = live_returns(predictor, bars.filter(pl.col("ts") >= tail_start), after=t1,
                          cost_bps=COST_BPS)
    assert second["ts"].min() > t1 and second["ts"].max() == times[-3]
    stitched = pl.concat([first, second])
    assert stitched["ts"].to_list() == one_call["ts"].to_list()
    np.testing.assert_allclose(stitched["ret"], one_call["ret"], rtol=1e-12, atol=1e-15)
    stats = LiveStats.empty(90).update(first["ret"].to_numpy(), t1)
    stats = stats.update(second["ret"].to_numpy(), second["ts"].max())
    whole = LiveStats.empty(90).update(one_call["ret"].to_numpy(), one_call["ts"].max())
    assert stats.metrics(365.0, 1.0) == pytest.approx(whole.metrics(365.0, 1.0), rel=1e-9,
                                                      nan_ok=True)


def test_a_lagging_asset_holds_the_series_back_until_its_bars_arrive(model):
    predictor, bars = model
    times = bars["ts"].unique().sort()
    lagging = bars.filter((pl.col("symbol") == "AAA") | (pl.col("ts") <= times[-4]))
    early = live_returns(predictor, lagging, after=times[100], cost_bps=COST_BPS)
    assert early["ts"].max() == times[-6]  # BBB's last labelled bar; AAA alone goes further
    late = live_returns(predictor, bars, after=early["ts"].max(), cost_bps=COST_BPS)
    one_call = live_returns(predictor, bars, after=times[100], cost_bps=COST_BPS)
    assert pl.concat([early, late]).equals(one_call)


def test_missing_columns_or_too_few_bars_are_named(model):
    predictor, bars = model
    with pytest.raises(ValueError, match=r"lack the columns \['symbol'\]"):
        live_returns(predictor, bars.drop("symbol"), after=None, cost_bps=COST_BPS)
    first_ten = bars["ts"].min() + timedelta(days=10)
    short = bars.filter((pl.col("symbol") == "AAA") | (pl.col("ts") < first_ten))
    with pytest.raises(ValueError, match=rf"too few bars \('BBB': 10\).*at least "
                                         rf"{predictor.min_bars}"):
        live_returns(predictor, short, after=None, cost_bps=COST_BPS)
    with pytest.raises(ValueError, match="execution_price"):
        live_returns(predictor, bars, after=None, cost_bps=COST_BPS, execution_price="high")
    no_new = live_returns(predictor, bars, after=bars["ts"].max(), cost_bps=COST_BPS)
    assert no_new.is_empty() and no_new.columns == ["ts", "ret", "n_assets"]

