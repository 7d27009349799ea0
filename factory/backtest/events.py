"""The four events of the backtest and the paper trader, and the entries of their event log.

Every event covers the whole universe at one time: its arrays have one entry per symbol, in
the order of the universe's ``symbols`` tuple (sorted names unless given). Passing one event
per timestamp rather than one per (symbol, timestamp) is what lets the loop process hundreds
of thousands of asset-bars a second: each component works on numpy arrays, never on
per-symbol Python objects (a one-symbol universe works on floats, below).

The arrays an event carries are owned by the component that made it: readers must not write
into them (the market event's arrays are read-only views of the feed's storage).

Events are built once per bar, so they are plain classes with ``__slots__`` (a frozen
dataclass costs several times more to build). A per-symbol field stores what its maker
passed: an array, or, in a universe of one symbol, a float (``factory.backtest.scalar``: the
one-symbol path never builds a one-element array). Reading the attribute (``quantities``)
always gives an array; the components of this package read the stored value
(``_quantities``) directly.
"""

from __future__ import annotations

from enum import Enum
from operator import attrgetter
from typing import NamedTuple

import numpy as np


class EventType(Enum):
    """What an event says happened."""

    MARKET = "market"
    """A new bar of every symbol reached the system (its close is known)."""
    SIGNAL = "signal"
    """The strategy's target weights, decided at a bar's close."""
    ORDER = "order"
    """What the risk manager sends to the broker, to fill at the next bar."""
    FILL = "fill"
    """What the broker executed, at what price and cost."""


def to_stamp(ts: object) -> int:
    """A time as integer microseconds since the epoch (naive UTC), as `MarketEvent.stamp`."""
    return int(np.datetime64(ts, "us").astype(np.int64))


def _per_symbol(stored: str, doc: str) -> property:
    """A read-only attribute giving the ``stored`` slot as an array (a float stored for a
    one-symbol universe becomes a read-only one-element array)."""
    read = attrgetter(stored)

    def as_array(event: object) -> np.ndarray:
        value = read(event)
        if value.__class__ is np.ndarray:
            return value
        array = np.array([value], dtype=np.float64)
        array.flags.writeable = False
        return array

    return property(as_array, doc=doc)


class _Event:
    """What every event shares: a readable ``repr`` listing its public fields."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"


class MarketEvent(_Event):
    """One bar of every symbol at ``ts``; NaN prices and volume where a symbol has no bar.

    Attributes
    ----------
    ts : numpy.datetime64
        The bar's time (naive UTC, microseconds), as stored in the lake.
    open, high, low, close, volume : numpy.ndarray
        Float64, one entry per symbol of the universe.
    stamp : int
        ``ts`` as integer microseconds since the epoch: what the loop and the strategies
        compare (comparing two ``numpy.datetime64`` costs about a microsecond). Computed from
        ``ts`` when not given.
    """

    __slots__ = ("ts", "_open", "_high", "_low", "_close", "_volume", "stamp")
    _fields = ("ts", "open", "high", "low", "close", "volume")
    type = EventType.MARKET

    def __init__(self, ts: np.datetime64, open: np.ndarray | float, high: np.ndarray | float,
                 low: np.ndarray | float, close: np.ndarray | float,
                 volume: np.ndarray | float, stamp: int | None = None) -> None:
        self.ts = ts
        self._open, self._high, self._low = open, high, low
        self._close, self._volume = close, volume
        self.stamp = to_stamp(ts) if stamp is None else stamp

    open = _per_symbol("_open", "Opens, one per symbol.")
    high = _per_symbol("_high", "Highs, one per symbol.")
    low = _per_symbol("_low", "Lows, one per symbol.")
    close = _per_symbol("_close", "Closes, one per symbol.")
    volume = _per_symbol("_volume", "Volumes, one per symbol.")


class SignalEvent(_Event):
    """Target weights decided at the close of the bar at ``ts``.

    A weight is the signed share of equity the strategy wants in a symbol: 0.5 is long half
    the equity's worth, -0.2 short a fifth. Weights are finite (a strategy maps "no view" to 0).
    """

    __slots__ = ("ts", "_weights")
    _fields = ("ts", "weights")
    type = EventType.SIGNAL

    def __init__(self, ts: np.datetime64, weights: np.ndarray | float) -> None:
        self.ts = ts
        self._weights = weights

    weights = _per_symbol("_weights", "Target weights, one per symbol.")


class OrderEvent(_Event):
    """Orders decided at the close of the bar at ``ts``, to execute at the next bar.

    Attributes
    ----------
    ts : numpy.datetime64
        The decision bar.
    target_weights : numpy.ndarray
        The weights the risk manager let through (after its limits; zero once the kill switch
        fired).
    quantities : numpy.ndarray
        Signed shares to trade, sized at the decision bar's close: ``target_weight * equity /
        close`` (rounded toward zero to whole lots) minus the shares held.
    flatten_only : bool
        True once the kill switch fired: every quantity closes or reduces a position.
    """

    __slots__ = ("ts", "_target_weights", "_quantities", "flatten_only")
    _fields = ("ts", "target_weights", "quantities", "flatten_only")
    type = EventType.ORDER

    def __init__(self, ts: np.datetime64, target_weights: np.ndarray | float,
                 quantities: np.ndarray | float, flatten_only: bool) -> None:
        self.ts = ts
        self._target_weights = target_weights
        self._quantities = quantities
        self.flatten_only = flatten_only

    target_weights = _per_symbol("_target_weights", "Target weights let through, per symbol.")
    quantities = _per_symbol("_quantities", "Signed shares to trade, per symbol.")


class FillEvent(_Event):
    """What the simulated broker executed at the bar at ``ts`` for the order of ``decision_ts``.

    Attributes
    ----------
    ts, decision_ts : numpy.datetime64
        The fill bar and the bar whose close decided the order.
    quantities : numpy.ndarray
        Signed shares bought (+) or sold (-).
    prices : numpy.ndarray
        Price per share paid or received, slippage included; NaN where the symbol had no bar.
    commissions : numpy.ndarray
        Commission charged per symbol, in money.
    slippage : numpy.ndarray
        Money lost to slippage per symbol: ``|quantity| * (|price - execution price|)``.
    cancelled : numpy.ndarray
        Signed shares of the order that were not filled (volume cap, or no bar) and are
        dropped: the next decision sizes its order from the shares actually held.
    """

    __slots__ = ("ts", "decision_ts", "_quantities", "_prices", "_commissions", "_slippage",
                 "_cancelled")
    _fields = ("ts", "decision_ts", "quantities", "prices", "commissions", "slippage",
               "cancelled")
    type = EventType.FILL

    def __init__(self, ts: np.datetime64, decision_ts: np.datetime64,
                 quantities: np.ndarray | float, prices: np.ndarray | float,
                 commissions: np.ndarray | float, slippage: np.ndarray | float,
                 cancelled: np.ndarray | float) -> None:
        self.ts, self.decision_ts = ts, decision_ts
        self._quantities, self._prices = quantities, prices
        self._commissions, self._slippage = commissions, slippage
        self._cancelled = cancelled

    quantities = _per_symbol("_quantities", "Signed shares filled, per symbol.")
    prices = _per_symbol("_prices", "Fill prices, slippage included, per symbol.")
    commissions = _per_symbol("_commissions", "Commission per symbol, in money.")
    slippage = _per_symbol("_slippage", "Money lost to slippage per symbol.")
    cancelled = _per_symbol("_cancelled", "Signed shares cancelled, per symbol.")


class LogEntry(NamedTuple):
    """A decision the orders and fills do not show by themselves (a limit bound, the kill
    switch fired, an order was cut), with the bar it happened at and the component."""

    ts: np.datetime64
    source: str
    message: str
