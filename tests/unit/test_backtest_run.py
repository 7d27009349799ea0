"""A model set's backtest: the realistic run and its vectorised twin on the same weights."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from factory.config import RiskLimitsConfig, TradingConfig
from factory.trading.backtest_run import run_backtest

START = datetime(2020, 1, 1)


def bars(symbols: tuple[str, ...], n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for symbol in symbols:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        frames.append(pl.DataFrame({
            "symbol": symbol, "ts": [START + timedelta(days=i) for i in range(n)],
            "open": close * (1 + rng.normal(0, 0.002, n)), "high": close * 1.01,
            "low": close * 0.99, "close": close, "volume": np.full(n, 1e9)}))
    return pl.concat(frames)


def weights(symbols: tuple[str, ...], days: range, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame([{"ts": START + timedelta(days=d), "symbol": s,
                          "weight": float(rng.uniform(-0.5, 0.5))}
                         for d in days for s in symbols])


@pytest.mark.parametrize("price", ["close", "open"])
def test_the_twin_reproduces_the_vectorised_evaluation(price):
    symbols = ("A", "B")
    report = run_backtest(bars(symbols, 400), weights(symbols, range(50, 350)), TradingConfig(),
                          execution_price=price, cost_bps=2.0, periods_per_year=252)
    assert report.metrics["parity_max_abs_diff"] < 1e-9
    assert report.metrics["parity_bars"] == 300
    assert report.start == START + timedelta(days=50)
    assert report.end == START + timedelta(days=349)
    assert report.result.returns["ts"].max() == report.end
    # The realistic broker pays commission on notional and slippage: a different series.
    assert report.metrics["commission"] > 0 and report.metrics["slippage"] > 0
    assert report.metrics["sharpe"] != pytest.approx(report.metrics["vectorised_sharpe"])
    assert report.metrics["n_obs"] == 300


def test_the_window_and_the_kill_switch():
    symbols = ("A",)
    tight = TradingConfig(risk=RiskLimitsConfig(max_drawdown=0.01))
    report = run_backtest(bars(symbols, 400), weights(symbols, range(0, 390)), tight,
                          execution_price="close", cost_bps=2.0, periods_per_year=252,
                          start=START + timedelta(days=100), end=START + timedelta(days=200))
    assert report.start == START + timedelta(days=100)
    assert report.end == START + timedelta(days=200)
    assert report.metrics["kill_switch"] == 1.0
    assert report.result.history["ts"].max() <= START + timedelta(days=202)


def test_bad_windows_and_missing_bars_are_named():
    with pytest.raises(ValueError, match="no out-of-sample decision between"):
        run_backtest(bars(("A",), 50), weights(("A",), range(10, 20)), TradingConfig(),
                     execution_price="close", cost_bps=2.0, periods_per_year=252,
                     start=START + timedelta(days=30))
    with pytest.raises(ValueError, match="no bars of \\['B'\\]"):
        run_backtest(bars(("A",), 50), weights(("A", "B"), range(10, 20)), TradingConfig(),
                     execution_price="close", cost_bps=2.0, periods_per_year=252)
