"""The simulated broker: orders decided at bar ``t``'s close fill at bar ``t + 1``.

The fill price is bar ``t + 1``'s ``price`` ("close" by default, or "open"), the house's
``execution_price``. What is filled, and what it costs, depends on two choices.

``rebalance``
    ``"orders"`` (default, realistic): the order's share quantities, sized by the risk
    manager at the decision bar's close, are what the broker trades. The weight actually held
    after the fill differs from the target by the price move from the decision close to the
    fill price (and by lot rounding and costs), and it drifts with prices afterwards.
    ``"target"``: the broker re-sizes each order at the fill price so the position after the
    fill is exactly ``target_weight * equity / price`` in fractional shares, ``equity``
    marked at the fill prices before costs: every bar the portfolio is rebalanced back to the
    target, undoing any drift (a target-percent order).

``cost_model``
    ``"notional"`` (default, realistic): ``commission_bps / 1e4 * |shares| * fill price`` per
    symbol: every share traded pays, the rebalancing of drift included.
    ``"weight-turnover"``: ``commission_bps / 1e4 * |w_t - w_{t-1}| * equity`` per symbol,
    with ``w`` the order's target weights (``w_{-1} = 0``) and ``equity`` marked at the fill
    prices before costs: only changes of the target pay, drift is rebalanced for free. Needs
    ``rebalance="target"``.

Slippage moves the fill price against the trader by a fixed ``slippage_bps``: a buy pays
``price * (1 + slippage_bps / 1e4)``, a sale receives ``price * (1 - slippage_bps / 1e4)``;
the money lost, ``|shares| * price * slippage_bps / 1e4``, is reported per fill.

Volume cap: with ``max_volume_share``, a fill trades at most that share of the fill bar's
volume in each symbol; the rest is cancelled, not carried to the next bar. The risk manager
sizes every order from the shares actually held, so the next decision asks again for
whatever is still wanted; a carried remainder would be asked for twice. A symbol without a
bar at the fill time is not traded and its order is cancelled likewise. The event log counts
both.

The factory's vectorised evaluation (``factory.evaluation.signals.strategy_returns``)
rebalances every bar to the target weight, charges costs on ``|change in target weight|``,
and knows no drift, slippage, volume cap or whole shares. `ExecutionHandler.vectorised`
is that configuration (``rebalance="target"``, ``cost_model="weight-turnover"``, no
slippage, no cap); with a risk manager that sets no limits and trades fractional shares
(``RiskManager(lot_size=None)``) the engine then reproduces the vectorised returns to
rounding (``factory.backtest.engine``). The realistic default differs from it in each of
those points: commission on traded notional (drift rebalancing pays), weights that drift
from the target, slippage, volume caps and whole lots.

With a one-symbol portfolio the broker does the same arithmetic on Python floats
(``factory.backtest.scalar``), with the same results to the bit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from factory.backtest.events import FillEvent, LogEntry, MarketEvent, OrderEvent
from factory.backtest.portfolio import Portfolio
from factory.backtest.scalar import minimum, sign, single

SOURCE = "execution"
EXECUTION_PRICES = ("close", "open")
REBALANCE_MODES = ("orders", "target")
COST_MODELS = ("notional", "weight-turnover")


class ExecutionHandler:
    """Fills each bar's order at the next bar (see the module's docstring for the models).

    Parameters
    ----------
    price : {"close", "open"}, default "close"
        The fill bar's price trades execute at.
    commission_bps : float, default 2
        Commission in basis points (of traded notional, or of the equity times the change in
        target weight under ``cost_model="weight-turnover"``), at least 0.
    slippage_bps : float, default 1
        Fixed slippage against the trader, in basis points of the price, at least 0.
    max_volume_share : float or None, default 0.1
        Largest share of the fill bar's volume one fill may trade, in (0, 1]; None: no cap.
    rebalance : {"orders", "target"}, default "orders"
        Trade the ordered shares, or re-size at the fill price to hit the target exactly.
    cost_model : {"notional", "weight-turnover"}, default "notional"
        How commission is charged.

    Attributes
    ----------
    log : list of LogEntry
        Bars where orders were cut by the volume cap or cancelled for want of a bar.
    """

    def __init__(self, price: Literal["close", "open"] = "close", commission_bps: float = 2.0,
                 slippage_bps: float = 1.0, max_volume_share: float | None = 0.1,
                 rebalance: Literal["orders", "target"] = "orders",
                 cost_model: Literal["notional", "weight-turnover"] = "notional") -> None:
        if price not in EXECUTION_PRICES:
            raise ValueError(f"price must be one of {EXECUTION_PRICES}, got {price!r}")
        if rebalance not in REBALANCE_MODES:
            raise ValueError(f"rebalance must be one of {REBALANCE_MODES}, got {rebalance!r}")
        if cost_model not in COST_MODELS:
            raise ValueError(f"cost_model must be one of {COST_MODELS}, got {cost_model!r}")
        if cost_model == "weight-turnover" and rebalance != "target":
            raise ValueError("cost_model='weight-turnover' charges changes of the target weight "
                             "and needs rebalance='target' (positions held at the target)")
        for name, value in (("commission_bps", commission_bps), ("slippage_bps", slippage_bps)):
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and at least 0, got {value}")
        if max_volume_share is not None and not 0 < max_volume_share <= 1:
            raise ValueError(f"max_volume_share must be in (0, 1] or None, got "
                             f"{max_volume_share}")
        self.price = price
        self.commission_rate = commission_bps / 1e4
        self.slippage_rate = slippage_bps / 1e4
        self.max_volume_share = max_volume_share
        self.rebalance = rebalance
        self.cost_model = cost_model
        self.log: list[LogEntry] = []
        self._pending: OrderEvent | None = None
        self._filled_target: np.ndarray | None = None

    @classmethod
    def vectorised(cls, price: Literal["close", "open"] = "close",
                   cost_bps: float = 0.0) -> ExecutionHandler:
        """The broker of the factory's vectorised evaluation: rebalance to the target every
        bar at ``price``, ``cost_bps`` per unit of change in target weight, no slippage, no
        volume cap (pair it with ``RiskManager(lot_size=None)``)."""
        return cls(price=price, commission_bps=cost_bps, slippage_bps=0.0,
                   max_volume_share=None, rebalance="target", cost_model="weight-turnover")

    def on_order(self, order: OrderEvent) -> None:
        """Hold ``order`` until the next bar (it replaces one not yet filled)."""
        self._pending = order

    def on_market(self, market: MarketEvent, portfolio: Portfolio) -> FillEvent | None:
        """Fill the pending order at this bar; None when there is none.

        ``portfolio`` must already be marked at this bar's execution prices
        (`Portfolio.mark_execution`); it is read, not changed.
        """
        order = self._pending
        if order is None:
            return None
        self._pending = None
        if not portfolio.single:
            return self._fill(order, market, portfolio)
        # One symbol: the same arithmetic on floats.
        price = market._close if self.price == "close" else market._open
        if price.__class__ is not float:
            price = single(price)
        ordered, equity = order._quantities, portfolio.equity_at_execution
        if price - price != 0.0:  # no bar at the fill time: nothing trades, all is cancelled
            if ordered != 0.0:
                self.log.append(LogEntry(market.ts, SOURCE,
                                         "1 orders cancelled: no bar at the fill time"))
            # the array path's zero change times equity (-0.0 when equity is negative)
            commission = (0.0 if self.cost_model == "notional"
                          else self.commission_rate * 0.0 * equity)
            return FillEvent(market.ts, order.ts, 0.0, price, commission, 0.0, ordered)
        if self.rebalance == "target":
            wanted = order._target_weights * equity / price - portfolio._shares
        else:
            wanted = ordered
        filled = wanted
        if self.max_volume_share is not None:
            volume = market._volume
            if volume.__class__ is not float:
                volume = single(volume)
            filled = sign(wanted) * minimum(abs(wanted), self.max_volume_share * volume)
        side = 1.0 if filled > 0.0 else -1.0 if filled < 0.0 else sign(filled)
        fill_price = price * (1.0 + self.slippage_rate * side)
        if self.cost_model == "notional":
            commission = self.commission_rate * abs(filled) * fill_price
        else:
            target = order._target_weights
            previous = 0.0 if self._filled_target is None else self._filled_target
            self._filled_target = target
            commission = self.commission_rate * abs(target - previous) * equity
        if self.max_volume_share is not None and filled != wanted:
            self.log.append(LogEntry(
                market.ts, SOURCE, f"volume cap {self.max_volume_share:g} of the bar's volume: "
                f"1 orders partly filled, {abs(wanted - filled):g} shares cancelled"))
        return FillEvent(market.ts, order.ts, filled, fill_price, commission,
                         abs(filled) * price * self.slippage_rate, wanted - filled)

    def _fill(self, order: OrderEvent, market: MarketEvent, portfolio: Portfolio) -> FillEvent:
        """`on_market` on arrays, for the pending ``order``."""
        price = market._close if self.price == "close" else market._open
        tradable = np.isfinite(price)
        # Where every symbol has a bar, each np.where(tradable, x, ...) below is x itself.
        everywhere = bool(tradable.all())
        equity = portfolio.equity_at_execution
        if self.rebalance == "target":
            wanted = order._target_weights * equity / price - portfolio._shares
        else:
            wanted = order._quantities
        volume = market._volume
        if not everywhere:
            wanted = np.where(tradable, wanted, 0.0)
            volume = np.where(tradable, volume, 0.0)
        filled = wanted
        if self.max_volume_share is not None:
            room = self.max_volume_share * volume
            filled = np.sign(wanted) * np.minimum(np.abs(wanted), room)
        cancelled = wanted - filled
        side = np.sign(filled)
        fill_price = price * (1.0 + self.slippage_rate * side)
        slippage = np.abs(filled) * price * self.slippage_rate
        if not everywhere:
            cancelled = np.where(tradable, cancelled, order._quantities)
            slippage = np.where(tradable, slippage, 0.0)
        commissions = self._commissions(order, filled, fill_price, equity,
                                        None if everywhere else tradable)
        self._note(market.ts, order, wanted, filled, None if everywhere else tradable)
        return FillEvent(market.ts, order.ts, filled, fill_price, commissions, slippage,
                         cancelled)

    def _commissions(self, order: OrderEvent, filled: np.ndarray, fill_price: np.ndarray,
                     equity: float, tradable: np.ndarray | None) -> np.ndarray:
        """Commission per symbol under the cost model (0 where nothing could trade;
        ``tradable`` None: every symbol could)."""
        if self.cost_model == "notional":
            commissions = self.commission_rate * np.abs(filled) * fill_price
            return commissions if tradable is None else np.where(tradable, commissions, 0.0)
        target = order._target_weights
        previous = (self._filled_target if self._filled_target is not None
                    else np.zeros_like(target))
        change = np.abs(target - previous)
        if tradable is None:
            self._filled_target = target
        else:
            change = np.where(tradable, change, 0.0)
            self._filled_target = np.where(tradable, target, previous)
        return self.commission_rate * change * equity

    def _note(self, ts: np.datetime64, order: OrderEvent, wanted: np.ndarray,
              filled: np.ndarray, tradable: np.ndarray | None) -> None:
        """Log orders cut by the volume cap or cancelled for want of a bar (``tradable``
        None: every symbol had one)."""
        if tradable is not None:
            no_bar = int(np.count_nonzero(~tradable & (order._quantities != 0)))
            if no_bar:
                self.log.append(LogEntry(ts, SOURCE, f"{no_bar} orders cancelled: no bar at "
                                                     "the fill time"))
        if self.max_volume_share is not None:
            cut = filled != wanted
            if cut.any():
                self.log.append(LogEntry(
                    ts, SOURCE, f"volume cap {self.max_volume_share:g} of the bar's volume: "
                    f"{int(cut.sum())} orders partly filled, "
                    f"{float(np.abs(wanted - filled).sum()):g} shares cancelled"))
