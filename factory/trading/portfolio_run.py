"""Target weights from the models' forecasts: a mean-variance portfolio rebalanced through
time, each rebalance on a risk model estimated as of that bar.

At decision bar ``t`` the optimiser (``factory.portfolio.MeanVarianceOptimizer``, built once
and re-solved) takes the set's forecasts ``mu_t`` (``factory.trading.model_set``), a factor
risk model estimated from returns known at ``t``'s close (PCA of trailing daily returns, or
the packaged Fama-French factors as published by then) and the weights held, and returns the
next target. Bars before the risk model has enough history stay flat; a rebalance the
optimiser cannot solve keeps the weights held and is counted, never traded half-solved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from factory.config import PortfolioConfig
from factory.portfolio import (
    FAMA_FRENCH_FACTORS,
    FactorRiskModel,
    InsufficientHistoryError,
    MeanVarianceOptimizer,
    PortfolioConstraints,
    RebalanceResult,
    estimate_fama_french_model,
    estimate_pca_model,
    load_fama_french_factors,
)

Estimator = Callable[[pl.DataFrame, datetime], FactorRiskModel]
"""``estimate(returns, as_of)``: a risk model from the returns known at ``as_of``."""


@dataclass
class PortfolioPath:
    """Target weights through time and how each rebalance went.

    Attributes
    ----------
    weights : pl.DataFrame
        ``ts, symbol, weight``: the target decided at each bar's close.
    rebalances, kept_previous, warming_up : int
        Solves attempted, solves that failed and kept the held weights, and bars skipped
        for want of history.
    solve_seconds : list of float
        Each successful solve's time.
    failures : list of str
        The first few failures' messages, with their bars.
    """

    weights: pl.DataFrame
    rebalances: int = 0
    kept_previous: int = 0
    warming_up: int = 0
    solve_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """The counts and the median solve time, as metrics."""
        median = float(np.median(self.solve_seconds)) if self.solve_seconds else float("nan")
        return {"rebalances": float(self.rebalances),
                "rebalances_kept_previous": float(self.kept_previous),
                "bars_warming_up": float(self.warming_up), "median_solve_seconds": median}


def daily_returns(bars: pl.DataFrame) -> pl.DataFrame:
    """``ts, symbol, ret``: close-to-close simple returns of each symbol's bars."""
    return (bars.sort("symbol", "ts")
            .with_columns((pl.col("close") / pl.col("close").shift(1).over("symbol") - 1)
                          .alias("ret"))
            .drop_nulls("ret").select("ts", "symbol", "ret"))


def risk_model_estimator(config: PortfolioConfig, symbols: tuple[str, ...]
                         ) -> tuple[int, Estimator]:
    """The number of factors and ``estimate(returns, as_of)`` for ``config.risk_model``.

    Raises
    ------
    ValueError
        With fewer than two assets (a factor model and a portfolio need two).
    """
    if len(symbols) < 2:
        raise ValueError(f"a portfolio needs at least two assets; the models trade {symbols}")
    if config.risk_model == "fama_french":
        factors = load_fama_french_factors()

        def fama_french(returns: pl.DataFrame, as_of: datetime) -> FactorRiskModel:
            return estimate_fama_french_model(returns, as_of, factors=factors,
                                              window_months=config.window_months,
                                              symbols=symbols)

        return len(FAMA_FRENCH_FACTORS), fama_french
    n_factors = min(config.n_factors, len(symbols) - 1)

    def pca(returns: pl.DataFrame, as_of: datetime) -> FactorRiskModel:
        return estimate_pca_model(returns, as_of, n_factors=n_factors, window=config.window,
                                  symbols=symbols)

    return n_factors, pca


def portfolio_optimizer(config: PortfolioConfig, symbols: tuple[str, ...]
                        ) -> tuple[MeanVarianceOptimizer, Estimator]:
    """The optimiser ``config`` describes for ``symbols``, built once, and its risk model's
    estimator."""
    n_factors, estimate = risk_model_estimator(config, symbols)
    optimizer = MeanVarianceOptimizer(
        symbols, n_factors,
        PortfolioConstraints(max_gross=config.max_gross, max_weight=config.max_weight,
                             dollar_neutral=config.dollar_neutral,
                             long_only=config.long_only),
        risk_aversion=config.risk_aversion,
        transaction_cost=config.transaction_cost_bps / 1e4, solver=config.solver)
    return optimizer, estimate


def construct_portfolio(mu: pl.DataFrame, returns: pl.DataFrame,
                        config: PortfolioConfig) -> PortfolioPath:
    """Rebalance a mean-variance portfolio at every ``config.rebalance_every``-th bar of
    ``mu`` (``ts, symbol, mu``), each on a risk model estimated from ``returns`` (``ts,
    symbol, ret``) known at that bar."""
    symbols = tuple(sorted(mu["symbol"].unique().to_list()))
    optimizer, estimate = portfolio_optimizer(config, symbols)
    wide = mu.pivot(on="symbol", index="ts", values="mu").sort("ts").fill_null(0.0)
    times = wide["ts"].to_list()
    forecasts = wide.select(symbols).to_numpy()
    held = np.zeros(len(symbols))
    targets = np.zeros((len(times), len(symbols)))
    path = PortfolioPath(pl.DataFrame())
    for row, ts in enumerate(times):
        if row % config.rebalance_every == 0:
            held = _rebalanced(optimizer, estimate, returns, ts, forecasts[row], held, path)
        targets[row] = held
    path.weights = pl.DataFrame({
        "ts": np.repeat(np.array(times, dtype="datetime64[us]"), len(symbols)),
        "symbol": list(symbols) * len(times), "weight": targets.ravel()})
    return path


def _rebalanced(optimizer: MeanVarianceOptimizer, estimate: Estimator,
                returns: pl.DataFrame, ts: datetime, mu: np.ndarray, held: np.ndarray,
                path: PortfolioPath) -> np.ndarray:
    """The weights after one rebalance at ``ts`` (the held ones when it cannot be done)."""
    try:
        risk = estimate(returns, ts)
    except InsufficientHistoryError:
        path.warming_up += 1
        return held
    result: RebalanceResult = optimizer.rebalance(mu, risk, held)
    path.rebalances += 1
    if result.kept_previous:
        path.kept_previous += 1
        if len(path.failures) < 5:
            path.failures.append(f"{ts}: {result.message}")
        return held
    path.solve_seconds.append(result.solve_seconds)
    return np.array(result.weights)
