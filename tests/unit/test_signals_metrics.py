"""Labels, positions, costs and metrics on hand-computable examples, and the annualisation
fit takes from the lake's stored bar frequency."""

from datetime import datetime

import numpy as np
import polars as pl
import pytest

from factory.config import load_config
from factory.data.lake import LAKE_COLUMNS, Lake
from factory.data.schema import DataQualityError
from factory.data.sources import synthetic_bars
from factory.evaluation.metrics import (
    METRIC_CAP,
    equity_and_drawdown,
    prediction_metrics,
    trading_metrics,
)
from factory.evaluation.signals import positions_from_scores, strategy_returns
from factory.grid import expand
from factory.training.datasets import DatasetRef, cache_bars, cache_features
from factory.training.fit import evaluate_spec
from factory.training.splits import label_forward_returns
from tests.unit.test_frequency import equity_dates


def test_label_is_return_from_t_plus_1_to_t_plus_2():
    price = np.array([10.0, 10.0, 20.0, 20.0, 5.0])
    labels = label_forward_returns(price)
    # t=0: p[2]/p[1] - 1 = 1.0 (price doubles from t+1 to t+2); t=2: p[4]/p[3] - 1 = -0.75.
    np.testing.assert_allclose(labels[:3], [1.0, 0.0, -0.75])
    assert np.isnan(labels[3:]).all()


def test_label_rejects_non_positive_prices():
    with pytest.raises(ValueError, match=r"rows \[2\]"):
        label_forward_returns(np.array([1.0, 2.0, 0.0, 3.0]))


def test_positions_are_scaled_clipped_and_flat_without_score():
    positions = positions_from_scores(np.array([0.5, -3.0, np.nan, 4.0]), scale=2.0)
    np.testing.assert_allclose(positions, [0.25, -1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="scale"):
        positions_from_scores(np.array([1.0]), scale=0.0)


def test_costs_are_charged_on_turnover_from_flat():
    positions = np.array([1.0, 1.0, -0.5, 0.0])
    labels = np.array([0.01, 0.02, -0.04, np.nan])
    returns = strategy_returns(positions, labels, cost_bps=10.0)
    # turnover 1, 0, 1.5, 0.5 at 10 bps
    np.testing.assert_allclose(returns[:3], [0.01 - 0.001, 0.02, 0.02 - 0.0015])
    assert np.isnan(returns[3])


def test_max_drawdown_and_unrecovered_recovery():
    metrics = trading_metrics(np.array([0.1, -0.5, 0.2]), periods_per_year=252)
    assert metrics["max_drawdown"] == pytest.approx(0.5)
    assert metrics["recovery_bars"] == 2  # peak after bar 1, still under water at bar 3
    assert metrics["total_return"] == pytest.approx(1.1 * 0.5 * 1.2 - 1)
    assert metrics["n_obs"] == 3


def test_recovery_counts_bars_from_peak_back_to_peak():
    returns = np.array([0.1, -0.1, 0.0, 0.2, -0.01, 0.02])
    # equity 1.1 (peak) -> 0.99 -> 0.99 -> 1.188 (recovered 3 bars after the peak) -> ...
    assert trading_metrics(returns, 252)["recovery_bars"] == 3
    assert trading_metrics(np.array([0.01, 0.02]), 252)["recovery_bars"] == 0


def test_equity_and_drawdown_start_from_initial_capital():
    equity, drawdown = equity_and_drawdown(np.array([-0.5, np.nan, 1.0]))
    np.testing.assert_allclose(equity, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(drawdown, [0.5, 0.5, 0.0])


def test_profit_factor_and_win_rate():
    metrics = trading_metrics(np.array([0.03, -0.01, 0.0, 0.01, -0.02]), 252)
    assert metrics["profit_factor"] == pytest.approx(0.04 / 0.03)
    assert metrics["win_rate"] == pytest.approx(0.5)  # the zero return is not a trade
    no_losses = trading_metrics(np.array([0.01, 0.02]), 252)
    assert no_losses["profit_factor"] == METRIC_CAP
    assert no_losses["sortino"] == METRIC_CAP


def test_sharpe_of_constant_returns_is_zero_and_otherwise_annualised():
    assert trading_metrics(np.full(50, 0.001), 252)["sharpe"] == 0.0
    returns = np.array([0.01, -0.005, 0.02, 0.0])
    expected = returns.mean() / returns.std(ddof=1) * np.sqrt(252)
    assert trading_metrics(returns, 252)["sharpe"] == pytest.approx(expected)
    assert trading_metrics(returns, 252)["volatility"] == pytest.approx(
        returns.std(ddof=1) * np.sqrt(252)
    )


def test_cagr_annualises_total_growth():
    metrics = trading_metrics(np.full(504, 0.001), periods_per_year=252)
    assert metrics["cagr"] == pytest.approx(1.001**252 - 1)


def test_rolling_sharpe_last_and_worst_window():
    rng = np.random.default_rng(0)
    returns = np.concatenate([rng.normal(-0.01, 0.01, 30), rng.normal(0.01, 0.01, 90)])
    metrics = trading_metrics(returns, 252)
    last = returns[-30:]
    assert metrics["rolling_sharpe_30"] == pytest.approx(
        last.mean() / last.std(ddof=1) * np.sqrt(252)
    )
    first = returns[:30]
    assert metrics["rolling_sharpe_30_min"] <= first.mean() / first.std(ddof=1) * np.sqrt(252)
    assert metrics["rolling_sharpe_30_min"] < 0 < metrics["rolling_sharpe_90"]
    assert np.isnan(trading_metrics(returns[:50], 252)["rolling_sharpe_60"])


def test_nan_returns_are_dropped_and_turnover_reported():
    metrics = trading_metrics(
        np.array([np.nan, 0.01, -0.02]), 252, positions=np.array([0.0, 1.0, -1.0])
    )
    assert metrics["n_obs"] == 2
    assert metrics["turnover"] == pytest.approx(1.0)  # (0 + 1 + 2) / 3


def test_prediction_metrics():
    pred = np.array([1.0, -1.0, 2.0, np.nan])
    y = np.array([2.0, 1.0, 0.0, 5.0])
    metrics = prediction_metrics(pred, y)
    assert metrics["mse"] == pytest.approx((1 + 4 + 4) / 3)
    assert metrics["mae"] == pytest.approx(5 / 3)
    assert metrics["r2"] == pytest.approx(1 - 9 / 2)  # SST = 1 + 0 + 1
    assert metrics["directional_accuracy"] == pytest.approx(0.5)  # y=0 is skipped


def _two_bars_a_day() -> pl.DataFrame:
    """One symbol's daily bars stamped 00:00 from one file and 16:00 from another."""
    dates = equity_dates()
    first = synthetic_bars(("AAA",), n_bars=dates.len(), seed=5).with_columns(ts=dates)
    second = first.with_columns(pl.col("ts").dt.offset_by("16h"),
                                pl.col(["open", "high", "low", "close"]) * 1.5)
    return pl.concat([first, second]).sort("symbol", "ts")


def _fit_lightgbm(lake: Lake, tmp_path) -> tuple[DatasetRef, dict, pl.DataFrame]:
    spec = next(s for s in expand(load_config("smoke"), ("AAA",)).specs if s.arch == "lightgbm")
    ref = DatasetRef.for_lake(tmp_path / "cache", lake, lake.version(), ("AAA",))
    cache_bars(lake, ref)
    cache_features(ref, spec.feature_set, spec.feature_params)
    outcome = evaluate_spec(spec, ref, tmp_path / "model")
    return ref, outcome.metrics, outcome.portfolio


def test_two_bars_a_day_never_reach_fit_the_ingest_refuses_them(tmp_path):
    lake = Lake(tmp_path / "lake")
    with pytest.raises(DataQualityError, match=r"bar\(s\) lie within 20h of another bar"):
        lake.ingest_bars(_two_bars_a_day(), "a.csv, b.csv")
    assert lake.version() is None


def test_fit_annualises_by_the_stored_day_not_by_counting_bars(tmp_path):
    # A lake that took two bars a day before the check existed: fit used to count 2 bars a
    # day (504 a year) and report every Sharpe ratio sqrt(2) too high.
    lake = Lake(tmp_path / "lake")
    stitched = _two_bars_a_day().with_columns(
        knowledge_ts=pl.lit(datetime(2020, 1, 1)), source=pl.lit("legacy"))
    lake.append_table("bars", stitched.select(LAKE_COLUMNS))
    ref, metrics, portfolio = _fit_lightgbm(lake, tmp_path)
    assert (ref.periods_per_year, ref.bar_frequency) == (252, "1d")
    returns = portfolio["ret"].to_numpy()
    expected = returns.mean() / returns.std(ddof=1) * np.sqrt(252)
    assert metrics["sharpe"] == pytest.approx(expected, rel=1e-9)
    assert metrics["periods_per_year"] == 252
