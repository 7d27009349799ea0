"""``factory paper``: the paper-trading account that follows the stored target portfolio on the
bars reaching the lake (the snapshot feed: ``factory replay`` or new ingests).

The account starts at the first target ``factory portfolio`` stored and trades with the very
classes of the backtest (``factory.backtest.PaperTrader``: the same strategy, risk manager,
portfolio and broker, fed by a ``ReplayFeed``). Each call replays the feed from that start
through the latest bar, which the engine does deterministically, and appends to the lake only
what is new since the last call: the account's bars (``paper_account``) and its fills
(``paper_fills``). So a call killed halfway, or two calls in a row, never store a bar twice,
and the stored account is always the one a backtest of the same bars and targets gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from factory.backtest import (
    BacktestResult,
    ExecutionHandler,
    PaperTrader,
    Portfolio,
    ReplayFeed,
    RiskManager,
    TargetWeightStrategy,
)
from factory.config import TradingConfig
from factory.data.lake import Lake
from factory.paths import FactoryPaths
from factory.trading.portfolio_job import TARGETS_TABLE

ACCOUNT_TABLE = "paper_account"
"""One row per bar the paper account traded (``BacktestResult.history``)."""
FILLS_TABLE = "paper_fills"
"""One row per symbol filled (``BacktestResult.fills``)."""


@dataclass(frozen=True)
class PaperRun:
    """What one ``factory paper`` call traded and stored."""

    result: BacktestResult
    new_bars: int
    new_fills: int

    def lines(self) -> list[str]:
        """What ``factory paper`` prints."""
        history = self.result.history
        if history.is_empty():
            return ["paper account: no bar after the first stored target yet"]
        last = history.row(-1, named=True)
        held = self.result.weights.filter(pl.col("ts") == last["ts"])
        return [f"paper account through {last['ts']:%Y-%m-%d %H:%M}: equity "
                f"{last['equity']:,.2f}, cash {last['cash']:,.2f}, gross exposure "
                f"{last['gross_exposure']:.3f}; {self.new_bars} new bars, {self.new_fills} "
                "new fills stored",
                *(f"  {r['symbol']:10s} weight {r['weight']:+.4f}"
                  for r in held.iter_rows(named=True))]


def stored_targets(lake: Lake) -> pl.DataFrame:
    """``ts, symbol, weight``: each stored decision at its bar (the last one decided for a
    bar wins).

    Raises
    ------
    LookupError
        Before the first ``factory portfolio``.
    """
    if lake.version(TARGETS_TABLE) is None:
        raise LookupError("no target portfolio is stored yet: run `factory portfolio` first")
    targets = lake.read_table(TARGETS_TABLE).sort("decided_at")
    latest = targets.group_by("as_of").agg(pl.col("decided_at").max())
    return (targets.join(latest, on=["as_of", "decided_at"])
            .select(pl.col("as_of").alias("ts"), "symbol", "weight").sort("ts", "symbol"))


def paper_components(targets: pl.DataFrame, trading: TradingConfig, execution_price: str
                     ) -> tuple[TargetWeightStrategy, RiskManager, Portfolio, ExecutionHandler]:
    """Fresh strategy, risk manager, portfolio and broker: the ones a backtest takes too."""
    symbols = tuple(sorted(targets["symbol"].unique().to_list()))
    risk = trading.risk
    return (TargetWeightStrategy(targets, symbols),
            RiskManager(risk.max_position_weight, risk.max_gross_leverage, risk.max_drawdown),
            Portfolio(symbols, trading.initial_cash),
            ExecutionHandler(price=execution_price, commission_bps=trading.commission_bps,
                             slippage_bps=trading.slippage_bps,
                             max_volume_share=trading.max_volume_share))


def paper_trade(paths: FactoryPaths, trading: TradingConfig,
                execution_price: str = "close") -> PaperRun:
    """Trade the stored targets on the lake's bars; store the new account rows and fills."""
    lake = Lake(paths.lake)
    targets = stored_targets(lake)
    strategy, risk, portfolio, execution = paper_components(targets, trading, execution_price)
    bars = lake.read_bars(list(strategy.symbols)).filter(pl.col("ts") >= targets["ts"].min())
    trader = PaperTrader(ReplayFeed(strategy.symbols), strategy, risk, portfolio, execution)
    if bars.height:
        trader.append(bars)
    trader.run()
    result = trader.result()
    new_bars = _append_new(lake, ACCOUNT_TABLE, result.history, "ts")
    new_fills = _append_new(lake, FILLS_TABLE, result.fills, "ts")
    return PaperRun(result, new_bars, new_fills)


def _append_new(lake: Lake, table: str, rows: pl.DataFrame, time_column: str) -> int:
    """Append the rows later than the table's latest; returns how many."""
    if lake.version(table) is not None:
        stored = lake.read_table(table)
        if stored.height:
            rows = rows.filter(pl.col(time_column) > stored[time_column].max())
    if rows.height:
        lake.append_table(table, rows)
    return rows.height
