"""The event-driven backtest of a model set's out-of-sample signals, beside its vectorised
twin.

Two runs of the same engine over the same bars and target weights:

- the **realistic** one: the broker of ``conf/trading.yaml`` (commission on traded notional,
  slippage, volume caps, whole shares) behind the risk manager's limits and kill switch;
- the **vectorised twin**: the engine in the configuration of the factory's own evaluation
  (``factory.backtest.engine``), whose returns must equal ``strategy_returns`` applied to the
  same weights. The largest difference is reported as ``parity_max_abs_diff``: a backtest
  whose twin drifts from the evaluation is not trading what was evaluated.

Every figure is out of sample (the weights come from walk-forward predictions,
``factory.trading.model_set``) and after costs, annualised from the symbols' stored bar
frequency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from factory.backtest import (
    Backtest,
    BacktestResult,
    ExecutionHandler,
    HistoricBars,
    Portfolio,
    RiskManager,
    TargetWeightStrategy,
)
from factory.config import TradingConfig
from factory.evaluation.metrics import trading_metrics
from factory.evaluation.signals import strategy_returns
from factory.training.splits import label_forward_returns

PARITY_TOLERANCE = 1e-9
"""Largest difference allowed between the vectorised twin and ``strategy_returns``."""


@dataclass(frozen=True)
class BacktestReport:
    """A model set's backtest: the realistic run, its metrics and the parity check.

    Attributes
    ----------
    result : BacktestResult
        The realistic run (equity, returns, orders, fills, event log).
    metrics : dict of str to float
        ``trading_metrics`` of the realistic returns, plus ``parity_max_abs_diff`` (over
        ``parity_bars`` decisions), ``vectorised_sharpe`` (the twin's), ``commission``,
        ``slippage``, ``n_fills`` and ``kill_switch`` (1.0 when it fired).
    start, end : datetime
        The first and last decision bar traded.
    """

    result: BacktestResult
    metrics: dict[str, float]
    start: datetime
    end: datetime


def run_backtest(bars: pl.DataFrame, weights: pl.DataFrame, trading: TradingConfig, *,
                 execution_price: str, cost_bps: float, periods_per_year: float,
                 start: datetime | None = None, end: datetime | None = None) -> BacktestReport:
    """Backtest target ``weights`` on ``bars`` with the realistic broker and its twin.

    Parameters
    ----------
    bars : pl.DataFrame
        The lake's bars (``symbol, ts, open, high, low, close, volume``) of every symbol in
        ``weights``, reaching at least two bars past the last decision.
    weights : pl.DataFrame
        ``ts, symbol, weight``: target weights decided at each bar's close.
    trading : TradingConfig
        Account, broker and risk limits of the realistic run.
    execution_price : {"close", "open"}
        Where fills happen (the models' evaluation's convention).
    cost_bps : float
        The evaluation's cost per unit of turnover, charged by the twin.
    periods_per_year : float
        From the symbols' stored bar frequency.
    start, end : datetime, optional
        Decision bars outside ``[start, end]`` are dropped.

    Raises
    ------
    ValueError
        When no decision falls in the window, or the bars lack a symbol of the weights.
    """
    weights = _window(weights, start, end)
    symbols = tuple(sorted(weights["symbol"].unique().to_list()))
    missing = sorted(set(symbols) - set(bars["symbol"].unique().to_list()))
    if missing:
        raise ValueError(f"the lake holds no bars of {missing}, which the models traded")
    first, last = weights["ts"].min(), weights["ts"].max()
    traded = bars.filter(pl.col("symbol").is_in(symbols) & (pl.col("ts") >= first))
    timeline = traded["ts"].unique().sort()
    # The last decision fills at the next bar and is marked at the one after.
    cutoff = timeline[min(timeline.search_sorted(last) + 2, len(timeline) - 1)]
    traded = traded.filter(pl.col("ts") <= cutoff).sort("symbol", "ts")
    risk = trading.risk
    realistic = Backtest(
        HistoricBars(traded, symbols), TargetWeightStrategy(weights, symbols),
        RiskManager(risk.max_position_weight, risk.max_gross_leverage, risk.max_drawdown),
        Portfolio(symbols, trading.initial_cash),
        ExecutionHandler(price=execution_price, commission_bps=trading.commission_bps,
                         slippage_bps=trading.slippage_bps,
                         max_volume_share=trading.max_volume_share)).run()
    twin = Backtest(HistoricBars(traded, symbols), TargetWeightStrategy(weights, symbols),
                    RiskManager(lot_size=None), Portfolio(symbols, trading.initial_cash),
                    ExecutionHandler.vectorised(execution_price, cost_bps)).run()
    returns = _decided(realistic.returns, last)
    twin_returns = _decided(twin.returns, last)
    expected = vectorised_returns(traded, weights, symbols, execution_price, cost_bps)
    joined = twin_returns.join(expected, on="ts", how="inner", suffix="_vectorised")
    parity = float(np.max(np.abs((joined["ret"] - joined["ret_vectorised"]).to_numpy()),
                          initial=0.0))
    metrics = trading_metrics(returns["ret"].to_numpy(), periods_per_year)
    metrics.update(
        parity_max_abs_diff=parity,
        parity_bars=float(joined.height),
        vectorised_sharpe=trading_metrics(twin_returns["ret"].to_numpy(),
                                          periods_per_year)["sharpe"],
        commission=float(realistic.history["commission"].sum()),
        slippage=float(realistic.history["slippage"].sum()),
        n_fills=float(realistic.fills.height),
        kill_switch=float(realistic.log["message"].str.contains("kill switch").any()))
    return BacktestReport(realistic, metrics, first, last)


def vectorised_returns(bars: pl.DataFrame, weights: pl.DataFrame, symbols: tuple[str, ...],
                       execution_price: str, cost_bps: float) -> pl.DataFrame:
    """``ts, ret``: the factory's vectorised return of ``weights`` (summed over symbols),
    with every symbol's labels from its execution prices (``strategy_returns``)."""
    total: pl.DataFrame | None = None
    for symbol in symbols:
        asset = bars.filter(pl.col("symbol") == symbol).sort("ts")
        held = asset.select("ts").join(weights.filter(pl.col("symbol") == symbol),
                                       on="ts", how="left").sort("ts")
        position = held["weight"].fill_null(strategy="forward").fill_null(0.0).to_numpy()
        labels = label_forward_returns(asset[execution_price].to_numpy())
        frame = pl.DataFrame({"ts": asset["ts"],
                              "ret": strategy_returns(position, labels, cost_bps)})
        total = frame if total is None else total.join(frame, on="ts", suffix="_b").select(
            "ts", (pl.col("ret") + pl.col("ret_b")).alias("ret"))
    return total.filter(pl.col("ret").is_not_nan())


def _window(weights: pl.DataFrame, start: datetime | None, end: datetime | None
            ) -> pl.DataFrame:
    if start is not None:
        weights = weights.filter(pl.col("ts") >= start)
    if end is not None:
        weights = weights.filter(pl.col("ts") <= end)
    if weights.is_empty():
        raise ValueError(f"no out-of-sample decision between {start or 'the start'} and "
                         f"{end or 'the end'}")
    return weights


def _decided(returns: pl.DataFrame, last: datetime) -> pl.DataFrame:
    """The returns of decisions up to ``last`` (later bars only carried the last fill)."""
    return returns.filter(pl.col("ts") <= last)
