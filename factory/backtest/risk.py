"""The risk manager: limits on the strategy's target weights, a drawdown kill switch, and the
conversion of the weights it lets through into orders.

Per signal, in this order:

1. The drawdown kill switch: once the equity at a close falls more than ``max_drawdown``
   below its highest close so far (the initial cash counts as the first), every target
   becomes 0 and stays 0: each later order only closes or reduces positions
   (``flatten_only``). The event log records when and why. Non-positive equity flattens the
   same way.
2. Each ``|weight|`` is clipped to ``max_position_weight``.
3. If the gross leverage ``sum |weight|`` exceeds ``max_gross_leverage``, all weights are
   scaled down by the same factor.
4. Shares: ``target_weight * equity / close`` at the decision bar's close, rounded toward
   zero to whole ``lot_size`` lots (so rounding never enlarges a position), minus the shares
   held. A symbol without any price yet gets no order.

The limits hold for the target weights at the decision prices; positions then move with
prices until the next decision (see ``factory.backtest.execution``).

With a one-symbol portfolio the same steps run on Python floats (``factory.backtest.scalar``),
with the same results to the bit.
"""

from __future__ import annotations

import numpy as np

from factory.backtest.events import LogEntry, OrderEvent, SignalEvent
from factory.backtest.portfolio import Portfolio
from factory.backtest.scalar import single, trunc

SOURCE = "risk"


class RiskManager:
    """Limits and kill switch between the strategy and the broker.

    Parameters
    ----------
    max_position_weight : float, default inf
        Largest ``|weight|`` of one symbol, positive.
    max_gross_leverage : float, default inf
        Largest ``sum |weight|``, positive.
    max_drawdown : float, optional
        Kill-switch threshold, a fraction in (0, 1): 0.2 flattens everything once equity is
        more than 20% below its peak. None: no kill switch.
    lot_size : float or None, default 1
        Orders are whole multiples of this many shares; None trades fractional shares.

    Attributes
    ----------
    killed : bool
        Whether the kill switch fired.
    log : list of LogEntry
        Bars where a limit bound or the kill switch fired, and why.
    """

    def __init__(self, max_position_weight: float = np.inf, max_gross_leverage: float = np.inf,
                 max_drawdown: float | None = None, lot_size: float | None = 1.0) -> None:
        if not max_position_weight > 0:
            raise ValueError(f"max_position_weight must be positive, got {max_position_weight}")
        if not max_gross_leverage > 0:
            raise ValueError(f"max_gross_leverage must be positive, got {max_gross_leverage}")
        if max_drawdown is not None and not 0 < max_drawdown < 1:
            raise ValueError(f"max_drawdown must be in (0, 1) or None, got {max_drawdown}")
        if lot_size is not None and not (np.isfinite(lot_size) and lot_size > 0):
            raise ValueError(f"lot_size must be positive and finite or None, got {lot_size}")
        self.max_position_weight = float(max_position_weight)
        self.max_gross_leverage = float(max_gross_leverage)
        self.max_drawdown = max_drawdown
        self.lot_size = lot_size
        self.killed = False
        self.peak_equity = -np.inf
        self.log: list[LogEntry] = []

    def on_signal(self, signal: SignalEvent, portfolio: Portfolio) -> OrderEvent:
        """The order for ``signal`` given the portfolio after the decision bar's close mark."""
        if not portfolio.single:
            return self._order(signal, portfolio)
        # One symbol: the steps on floats (the gross leverage of one weight is its abs).
        ts, equity = signal.ts, portfolio.equity
        if not self.killed:
            self._watch_drawdown(ts, equity, portfolio.initial_cash)
        if self.killed:
            return OrderEvent(ts, 0.0, -portfolio._shares, True)
        weight = signal._weights
        if weight.__class__ is not float:
            weight = single(weight)
        limit = self.max_position_weight
        if abs(weight) > limit:
            weight = limit if weight > 0.0 else -limit
            self.log.append(LogEntry(ts, SOURCE, f"position limit {limit:g}: clipped 1 weights"))
        gross = abs(weight)
        if gross > self.max_gross_leverage:
            weight = weight * (self.max_gross_leverage / gross)
            self.log.append(LogEntry(ts, SOURCE, f"gross leverage {gross:.4g} > "
                                                 f"{self.max_gross_leverage:g}: scaled down"))
        target = weight * equity / portfolio._last_price
        if self.lot_size is not None:
            target = trunc(target / self.lot_size) * self.lot_size
        quantity = 0.0 if target != target else target - portfolio._shares
        return OrderEvent(ts, weight, quantity, False)

    def _order(self, signal: SignalEvent, portfolio: Portfolio) -> OrderEvent:
        """`on_signal` on arrays."""
        equity = portfolio.equity
        if not self.killed:
            self._watch_drawdown(signal.ts, equity, portfolio.initial_cash)
        if self.killed:
            return OrderEvent(signal.ts, np.zeros_like(portfolio._shares), -portfolio._shares,
                              flatten_only=True)
        weights = self._apply_limits(signal.ts, signal._weights)
        target = weights * equity / portfolio._last_price
        if self.lot_size is not None:
            target = np.trunc(target / self.lot_size) * self.lot_size
        quantities = np.where(np.isnan(target), 0.0, target - portfolio._shares)
        return OrderEvent(signal.ts, weights, quantities, flatten_only=False)

    def _watch_drawdown(self, ts: np.datetime64, equity: float, initial_cash: float) -> None:
        """Fire the kill switch when equity breaches the drawdown limit or is not positive."""
        peak = self.peak_equity  # max(peak, initial_cash, equity), without a call
        if initial_cash > peak:
            peak = initial_cash
        if equity > peak:
            peak = equity
        self.peak_equity = peak
        if equity <= 0:
            self._kill(ts, f"equity {equity:.2f} is not positive")
        elif self.max_drawdown is not None:
            drawdown = 1.0 - equity / self.peak_equity
            if drawdown > self.max_drawdown:
                self._kill(ts, f"drawdown {drawdown:.2%} exceeds the limit "
                               f"{self.max_drawdown:.2%} (equity {equity:.2f}, peak "
                               f"{self.peak_equity:.2f})")

    def _kill(self, ts: np.datetime64, why: str) -> None:
        self.killed = True
        self.log.append(LogEntry(ts, SOURCE, f"kill switch: {why}; flattening every position "
                                             "and refusing new exposure from now on"))

    def _apply_limits(self, ts: np.datetime64, weights: np.ndarray) -> np.ndarray:
        """Clip each weight, then scale the gross leverage down, logging when either binds."""
        limit = self.max_position_weight
        if limit < np.inf:
            over = np.abs(weights) > limit
            if over.any():
                weights = np.clip(weights, -limit, limit)
                self.log.append(LogEntry(ts, SOURCE, f"position limit {limit:g}: clipped "
                                                     f"{int(over.sum())} weights"))
        gross = float(np.abs(weights).sum())
        if gross > self.max_gross_leverage:
            weights = weights * (self.max_gross_leverage / gross)
            self.log.append(LogEntry(ts, SOURCE, f"gross leverage {gross:.4g} > "
                                                 f"{self.max_gross_leverage:g}: scaled down"))
        return weights
