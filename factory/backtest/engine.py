"""The event loop, and the backtest that runs it over stored bars.

Per bar, events pass through one FIFO queue (``collections.deque``):

1. The bar arrives. The portfolio is marked at its execution price (``equity_at_execution``)
   and the execution handler fills the order decided at the previous bar's close at this
   bar's execution price: a FILL goes on the queue, then the MARKET.
2. FILL: the portfolio applies it (shares, cash, commission).
3. MARKET: the portfolio marks to the close; the strategy decides target weights at the
   close: a SIGNAL goes on the queue.
4. SIGNAL: the risk manager applies its limits and kill switch and sizes an ORDER.
5. ORDER: the execution handler holds it until the next bar.

So a decision at bar ``t``'s close trades at bar ``t + 1``, never earlier: the house's
timing convention. The same loop (`EventLoop`) runs the backtest (`Backtest`, over
`HistoricBars`) and the paper trader (``factory.backtest.paper``, over a `ReplayFeed`),
with the very same strategy, risk, portfolio and execution classes: only the data source
differs.

Cost per bar
------------
Each component works on whole-universe numpy arrays, so a bar of 500 symbols costs little
more than a bar of 10. What every bar pays regardless of width is kept small: events are
``__slots__`` classes, times are compared as integer microseconds (`MarketEvent.stamp`),
orders and fills are recorded as packed columns rather than kept as objects
(``factory.backtest.result``), and a one-symbol universe runs on Python floats
(``factory.backtest.scalar``) instead of one-element arrays, with the same results to the
bit. ``bench/event_engine.py`` measures both shapes.

Parity with the vectorised evaluation
-------------------------------------
``strategy_returns(positions, labels, cost_bps)`` returns, for decision bar ``t``,
``r_t = w_t * label_t - cost_bps / 1e4 * |w_t - w_{t-1}|`` with ``label_t = p[t + 2] /
p[t + 1] - 1`` at the execution price ``p``, and the factory's portfolio return is the
equal-weighted mean of the assets' ``r_t``. The engine reproduces both (to rounding, far
below 1e-9) when

- the strategy's target weights are the positions divided by the number of assets
  (``TargetWeightStrategy``; one asset: the positions themselves),
- ``RiskManager(lot_size=None)`` with no limits and no kill switch,
- ``ExecutionHandler.vectorised(price, cost_bps)`` with the same execution price,
- every asset has a bar at every time (where some lack one, the factory averages over the
  assets present, a divisor that changes from bar to bar).

Alignment: ``BacktestResult.returns`` gives decision bar ``t`` the return ``E[t + 2] /
E[t + 1] - 1``, ``E[k]`` the equity at bar ``k``'s execution price before bar ``k``'s fills.
Row ``t`` of it matches index ``t`` of the vectorised series; the vectorised series' last
two entries are NaN (unknown labels) and the engine has no row for them. Why it matches:
at the fill of bar ``t + 1`` the broker holds ``w_t * E / p[t + 1]`` shares per symbol and
charges ``cost_bps / 1e4 * |w_t - w_{t-1}| * E``, ``E = E[t + 1]``, so
``E[t + 2] = E * (1 + sum_i w_i,t * label_i,t - cost_bps / 1e4 * sum_i |w_i,t - w_i,t-1|)``.
"""

from __future__ import annotations

from collections import deque

from factory.backtest.data import DataHandler
from factory.backtest.events import FillEvent, MarketEvent, OrderEvent, SignalEvent
from factory.backtest.execution import ExecutionHandler
from factory.backtest.portfolio import Portfolio
from factory.backtest.result import (
    BacktestResult,
    FillRecord,
    OrderRecord,
    log_frame,
    weights_frame,
)
from factory.backtest.risk import RiskManager
from factory.backtest.strategy import Strategy


class EventLoop:
    """Dispatches the events of each bar to the components (see the module's docstring).

    Parameters
    ----------
    strategy, risk, portfolio, execution
        The components; the strategy and the portfolio must share one universe.

    Raises
    ------
    ValueError
        If the strategy's and the portfolio's symbols differ.
    """

    def __init__(self, strategy: Strategy, risk: RiskManager, portfolio: Portfolio,
                 execution: ExecutionHandler) -> None:
        if tuple(strategy.symbols) != tuple(portfolio.symbols):
            raise ValueError(f"the strategy trades {list(strategy.symbols)[:10]} but the "
                             f"portfolio holds {list(portfolio.symbols)[:10]}; build both "
                             "from the data handler's symbols")
        self.strategy, self.risk = strategy, risk
        self.portfolio, self.execution = portfolio, execution
        self.symbols = portfolio.symbols
        # Dispatched orders and fills are recorded field by field, not kept as events: two
        # event objects surviving each bar make Python's cyclic garbage collector's full
        # passes cost more than the rest of a one-symbol bar.
        self._orders = OrderRecord(portfolio.single)
        self._fills = FillRecord(portfolio.single)
        self._counts = dict.fromkeys((MarketEvent, FillEvent, SignalEvent, OrderEvent), 0)
        self._queue: deque = deque()
        self._last_ts = None
        self._last_stamp = None
        self._fill_at_close = execution.price == "close"

    @property
    def orders(self) -> list[OrderEvent]:
        """Every order dispatched so far, oldest first."""
        return self._orders.events()

    @property
    def fills(self) -> list[FillEvent]:
        """Every fill dispatched so far, oldest first."""
        return self._fills.events()

    def check_universe(self, data: DataHandler) -> None:
        """Refuse a data handler whose symbols are not the components'."""
        if tuple(data.symbols) != self.symbols:
            raise ValueError(f"the data holds {list(data.symbols)[:10]} but the portfolio "
                             f"holds {list(self.symbols)[:10]}; build the components from "
                             "the data handler's symbols")

    def process(self, market: MarketEvent) -> None:
        """Run one bar through the loop, to its order."""
        stamp = market.stamp
        if self._last_stamp is not None and stamp <= self._last_stamp:
            raise ValueError(f"bar at {market.ts} is not after the previous bar at "
                             f"{self._last_ts}")
        self._last_ts, self._last_stamp = market.ts, stamp
        portfolio, queue, counts = self.portfolio, self._queue, self._counts
        portfolio.mark_execution(market._close if self._fill_at_close else market._open)
        fill = self.execution.on_market(market, portfolio)
        if fill is not None:
            queue.append(fill)
        queue.append(market)
        while queue:
            event = queue.popleft()
            kind = event.__class__
            counts[kind] += 1
            if kind is MarketEvent:
                portfolio.on_market(event)
                queue.append(self.strategy.on_market(event))
            elif kind is SignalEvent:
                queue.append(self.risk.on_signal(event, portfolio))
            elif kind is OrderEvent:
                self._orders.add(event)
                self.execution.on_order(event)
            else:
                self._fills.add(event)
                portfolio.on_fill(event)

    def result(self) -> BacktestResult:
        """Everything recorded so far."""
        history = self.portfolio.history()
        return BacktestResult(
            symbols=self.symbols, history=history, returns=self.portfolio.returns(),
            weights=weights_frame(history["ts"].to_numpy(), self.portfolio.weight_matrix(),
                                  self.symbols),
            orders=self._orders.frame(self.symbols),
            fills=self._fills.frame(self.symbols),
            log=log_frame([*self.risk.log, *self.execution.log]),
            event_counts={kind.type.value: count for kind, count in self._counts.items()},
        )


class Backtest:
    """An event-driven backtest over stored bars.

    Parameters
    ----------
    data : DataHandler
        Usually `HistoricBars`; any handler works (a `ReplayFeed` gives the paper trader's
        result in one go).
    strategy, risk, portfolio, execution
        Fresh components over ``data.symbols``.

    Examples
    --------
    >>> data = HistoricBars(bars)                                    # doctest: +SKIP
    >>> result = Backtest(data, TargetWeightStrategy(weights, data.symbols), RiskManager(),
    ...                   Portfolio(data.symbols), ExecutionHandler()).run()  # doctest: +SKIP
    """

    def __init__(self, data: DataHandler, strategy: Strategy, risk: RiskManager,
                 portfolio: Portfolio, execution: ExecutionHandler) -> None:
        self.data = data
        self.loop = EventLoop(strategy, risk, portfolio, execution)
        self.loop.check_universe(data)
        self._ran = False

    def run(self) -> BacktestResult:
        """Process every bar of the data and return the result.

        Raises
        ------
        RuntimeError
            On a second call: the components hold the state of the first run.
        """
        if self._ran:
            raise RuntimeError("this backtest ran already; build new components to run again")
        self._ran = True
        process = self.loop.process
        for market in self.data:
            process(market)
        return self.loop.result()
