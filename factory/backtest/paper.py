"""Paper trading: the backtest's components, fed bars as they arrive.

`PaperTrader` runs the same `EventLoop` with the same `Strategy`, `RiskManager`, `Portfolio`
and `ExecutionHandler` classes as `Backtest`; only the data source differs (a `ReplayFeed`
instead of `HistoricBars`). So a strategy trades on paper exactly as it was backtested, and
the same bars give the same orders, fills and equity in both.

It keeps its state between calls: call `PaperTrader.run` whenever new bars may have arrived
(after `PaperTrader.append`, or with a feed whose source polls for them), and read
`PaperTrader.result` at any time. An order decided at the latest bar waits, as in the
backtest, for the next bar to fill.
"""

from __future__ import annotations

import polars as pl

from factory.backtest.data import ReplayFeed
from factory.backtest.engine import EventLoop
from factory.backtest.execution import ExecutionHandler
from factory.backtest.portfolio import Portfolio
from factory.backtest.result import BacktestResult
from factory.backtest.risk import RiskManager
from factory.backtest.strategy import Strategy


class PaperTrader:
    """Trades the bars of a live or replayed feed as they come.

    Parameters
    ----------
    feed : ReplayFeed
        Where bars arrive.
    strategy, risk, portfolio, execution
        Fresh components over ``feed.symbols``, the same classes a `Backtest` takes.
    """

    def __init__(self, feed: ReplayFeed, strategy: Strategy, risk: RiskManager,
                 portfolio: Portfolio, execution: ExecutionHandler) -> None:
        self.feed = feed
        self.loop = EventLoop(strategy, risk, portfolio, execution)
        self.loop.check_universe(feed)
        self.bars_processed = 0

    def append(self, bars: pl.DataFrame) -> None:
        """Hand new bars to the feed (see `ReplayFeed.append`); `run` trades them."""
        self.feed.append(bars)

    def run(self) -> int:
        """Trade every bar available now; returns how many bars that was."""
        processed = 0
        for market in self.feed:
            self.loop.process(market)
            processed += 1
        self.bars_processed += processed
        return processed

    def result(self) -> BacktestResult:
        """Everything traded so far."""
        return self.loop.result()
