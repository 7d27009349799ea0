"""Labels, positions, costs and metrics on hand-computable examples."""

import numpy as np
import polars as pl
import pytest

from factory.evaluation.metrics import (
    METRIC_CAP,
    equity_and_drawdown,
    infer_periods_per_year,
    prediction_metrics,
    trading_metrics,
)
from factory.evaluation.signals import positions_from_scores, strategy_returns
from factory.training.splits import label_forward_returns


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


def test_periods_per_year_daily_vs_hourly_24_7():
    days = pl.date_range(pl.date(2020, 1, 1), pl.date(2021, 12, 31), "1d", eager=True)
    weekdays = days.filter(days.dt.weekday() <= 5)
    assert infer_periods_per_year(weekdays) == 252
    every_day = np.arange("2020-01-01", "2021-01-01", dtype="datetime64[D]")
    assert infer_periods_per_year(every_day) == 365
    hourly = np.arange("2021-01-01T00", "2021-03-01T00", dtype="datetime64[h]")
    assert infer_periods_per_year(hourly) == 8760
    weekly = np.arange("2015-01-05", "2021-01-01", 7, dtype="datetime64[D]")
    assert infer_periods_per_year(weekly) == 52


def test_prediction_metrics():
    pred = np.array([1.0, -1.0, 2.0, np.nan])
    y = np.array([2.0, 1.0, 0.0, 5.0])
    metrics = prediction_metrics(pred, y)
    assert metrics["mse"] == pytest.approx((1 + 4 + 4) / 3)
    assert metrics["mae"] == pytest.approx(5 / 3)
    assert metrics["r2"] == pytest.approx(1 - 9 / 2)  # SST = 1 + 0 + 1
    assert metrics["directional_accuracy"] == pytest.approx(0.5)  # y=0 is skipped
