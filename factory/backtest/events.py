"""The four events of the backtest and the paper trader, and the entries of their event log.

Every event covers the whole universe at one time: its arrays have one entry per symbol, in
the order of the universe's ``symbols`` tuple (sorted names unless given). Passing one event
per timestamp rather than one per (symbol, timestamp) is what lets the loop process hundreds
of thousands of asset-bars a second: each component works on numpy arrays, never on
per-symbol Python objects.

The arrays an event carries are owned by the component that made it: readers must not write
into them (the market event's arrays are read-only views of the feed's storage).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
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


@dataclass(frozen=True, slots=True, eq=False)
class MarketEvent:
    """One bar of every symbol at ``ts``; NaN prices and volume where a symbol has no bar.

    Attributes
    ----------
    ts : numpy.datetime64
        The bar's time (naive UTC, microseconds), as stored in the lake.
    open, high, low, close, volume : numpy.ndarray
        Float64, one entry per symbol of the universe.
    """

    ts: np.datetime64
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    type = EventType.MARKET


@dataclass(frozen=True, slots=True, eq=False)
class SignalEvent:
    """Target weights decided at the close of the bar at ``ts``.

    A weight is the signed share of equity the strategy wants in a symbol: 0.5 is long half
    the equity's worth, -0.2 short a fifth. Weights are finite (a strategy maps "no view" to 0).
    """

    ts: np.datetime64
    weights: np.ndarray
    type = EventType.SIGNAL


@dataclass(frozen=True, slots=True, eq=False)
class OrderEvent:
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

    ts: np.datetime64
    target_weights: np.ndarray
    quantities: np.ndarray
    flatten_only: bool
    type = EventType.ORDER


@dataclass(frozen=True, slots=True, eq=False)
class FillEvent:
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

    ts: np.datetime64
    decision_ts: np.datetime64
    quantities: np.ndarray
    prices: np.ndarray
    commissions: np.ndarray
    slippage: np.ndarray
    cancelled: np.ndarray
    type = EventType.FILL


class LogEntry(NamedTuple):
    """A decision the orders and fills do not show by themselves (a limit bound, the kill
    switch fired, an order was cut), with the bar it happened at and the component."""

    ts: np.datetime64
    source: str
    message: str
