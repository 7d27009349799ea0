"""Event-driven backtesting and paper trading with the same components.

A `Backtest` replays stored bars (`HistoricBars`) through a `Strategy`, a `RiskManager`, a
`Portfolio` and an `ExecutionHandler`; a `PaperTrader` runs the very same classes on bars
as they arrive (`ReplayFeed`). ``factory.backtest.engine`` describes the event loop and the
configuration under which the engine reproduces the factory's vectorised evaluation
(``factory.evaluation.signals.strategy_returns``); ``factory.backtest.execution`` the fill
and cost models.
"""

from factory.backtest.data import DataHandler, HistoricBars, ReplayFeed
from factory.backtest.engine import Backtest, EventLoop
from factory.backtest.events import (
    EventType,
    FillEvent,
    LogEntry,
    MarketEvent,
    OrderEvent,
    SignalEvent,
)
from factory.backtest.execution import ExecutionHandler
from factory.backtest.history import BarHistory
from factory.backtest.paper import PaperTrader
from factory.backtest.portfolio import Portfolio
from factory.backtest.result import BacktestResult
from factory.backtest.risk import RiskManager
from factory.backtest.strategy import PredictorStrategy, Strategy, TargetWeightStrategy

__all__ = [
    "Backtest",
    "BacktestResult",
    "BarHistory",
    "DataHandler",
    "EventLoop",
    "EventType",
    "ExecutionHandler",
    "FillEvent",
    "HistoricBars",
    "LogEntry",
    "MarketEvent",
    "OrderEvent",
    "PaperTrader",
    "Portfolio",
    "PredictorStrategy",
    "ReplayFeed",
    "RiskManager",
    "SignalEvent",
    "Strategy",
    "TargetWeightStrategy",
]
