"""A mean-variance portfolio rebalanced through time on point-in-time risk models."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from factory.config import PortfolioConfig
from factory.trading.portfolio_run import construct_portfolio, daily_returns

START = datetime(2015, 1, 1)
SYMBOLS = ("A", "B", "C", "D")


def bars(n: int = 400, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    market = rng.normal(0, 0.01, n)
    frames = []
    for k, symbol in enumerate(SYMBOLS):
        ret = (0.5 + 0.3 * k) * market + rng.normal(0, 0.005, n)
        frames.append(pl.DataFrame({"symbol": symbol,
                                    "ts": [START + timedelta(days=i) for i in range(n)],
                                    "close": 100 * np.exp(np.cumsum(ret))}))
    return pl.concat(frames)


def forecasts(days: range) -> pl.DataFrame:
    """A strong positive forecast for A, negative for D, none for the others."""
    mu = {"A": 0.002, "B": 0.0, "C": 0.0, "D": -0.002}
    return pl.DataFrame([{"ts": START + timedelta(days=d), "symbol": s, "mu": mu[s]}
                         for d in days for s in SYMBOLS])


def test_weights_follow_the_forecasts_within_every_limit():
    config = PortfolioConfig(max_weight=0.05, max_gross=0.08)
    path = construct_portfolio(forecasts(range(300, 390)), daily_returns(bars()), config)
    wide = path.weights.pivot(on="symbol", index="ts", values="weight").sort("ts")
    assert wide.height == 90 and path.rebalances == 90 and path.kept_previous == 0
    w = wide.select(SYMBOLS).to_numpy()
    assert np.abs(w).max() <= 0.05 + 1e-6
    assert np.abs(w).sum(axis=1).max() <= 0.08 + 1e-6
    assert (w[:, 0] > 0.01).all() and (w[:, 3] < -0.01).all()
    assert path.summary()["median_solve_seconds"] > 0


def test_bars_without_enough_history_stay_flat_and_long_only_holds():
    config = PortfolioConfig(long_only=True, window=60, rebalance_every=5)
    path = construct_portfolio(forecasts(range(10, 120)), daily_returns(bars()), config)
    wide = path.weights.pivot(on="symbol", index="ts", values="weight").sort("ts")
    w = wide.select(SYMBOLS).to_numpy()
    assert path.warming_up > 0 and (w[:40] == 0).all()  # PCA needs 60 rows of history
    assert w.min() >= -1e-9 and w[-1, 0] > 0
    changes = np.flatnonzero(np.abs(np.diff(w, axis=0)).sum(axis=1) > 0) + 1
    assert (changes % 5 == 0).all()  # only rebalance bars move the weights


def test_a_single_asset_is_refused():
    with pytest.raises(ValueError, match="at least two assets"):
        construct_portfolio(forecasts(range(5)).filter(pl.col("symbol") == "A"),
                            daily_returns(bars()), PortfolioConfig())


def test_symbols_without_todays_bar_are_named_stale_with_their_last_bar():
    from factory.trading.portfolio_job import stale_symbols

    ragged = pl.concat([bars(), bars(300).filter(pl.col("symbol") == "A")
                        .with_columns(pl.lit("OLD").alias("symbol"))])
    today = ragged["ts"].max()
    assert stale_symbols(ragged, today) == {"OLD": START + timedelta(days=299)}
    assert stale_symbols(ragged.filter(pl.col("symbol") != "OLD"), today) == {}
