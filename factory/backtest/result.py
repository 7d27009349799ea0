"""What a backtest or a paper-trading session produced, as plain polars frames, and the
records the loop keeps to build them.

A run records a few values per bar and per symbol. Kept as Python floats in lists, each is a
heap object, later converted to numpy one at a time; so the per-symbol fields of a one-symbol
universe are packed into ``array.array("d")`` as they come (8 bytes each, one copy into
numpy), and a wider universe's arrays are kept in lists and stacked (`per_symbol_column`).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np
import polars as pl

from factory.backtest.events import FillEvent, LogEntry, OrderEvent


@dataclass(frozen=True)
class BacktestResult:
    """Equity, returns, positions, orders, fills and the event log of one run.

    Attributes
    ----------
    symbols : tuple of str
        The universe, in column order.
    history : polars.DataFrame
        One row per bar: ``ts, equity, equity_at_execution, cash, gross_exposure,
        net_exposure, commission, slippage, turnover, realised_pnl, unrealised_pnl``
        (``Portfolio.history``).
    returns : polars.DataFrame
        ``ts`` (decision bar) and ``ret``: the house's per-bar return of each decision
        (``Portfolio.returns``); what ``strategy_returns`` computes, aligned row for row.
    weights : polars.DataFrame
        ``ts, symbol, weight`` held at each close, rows with a nonzero weight.
    orders : polars.DataFrame
        ``ts`` (decision bar), ``symbol``, ``target_weight``, ``quantity``, ``flatten_only``:
        one row per symbol with a nonzero quantity or target.
    fills : polars.DataFrame
        ``ts`` (fill bar), ``decision_ts``, ``symbol``, ``quantity``, ``price``,
        ``commission``, ``slippage``, ``cancelled``: one row per symbol that traded, paid or
        had shares cancelled.
    log : polars.DataFrame
        ``ts, source, message``: limits that bound, the kill switch, cut or cancelled orders.
    event_counts : dict of str to int
        How many events of each type the loop dispatched.
    """

    symbols: tuple[str, ...]
    history: pl.DataFrame
    returns: pl.DataFrame
    weights: pl.DataFrame
    orders: pl.DataFrame
    fills: pl.DataFrame
    log: pl.DataFrame
    event_counts: dict[str, int]

    @property
    def equity(self) -> np.ndarray:
        """Equity at each close."""
        return self.history["equity"].to_numpy()


def _long(ts: np.ndarray, symbols: tuple[str, ...], keep: np.ndarray,
          columns: dict[str, np.ndarray]) -> pl.DataFrame:
    """Rows ``(ts[i], symbols[j], columns...[i, j])`` where ``keep[i, j]``, time-major."""
    rows, cols = np.nonzero(keep)
    frame = {"ts": pl.Series(ts[rows].astype("datetime64[us]")),
             "symbol": pl.Series(symbols, dtype=pl.Utf8).gather(cols)}
    frame |= {name: values[rows, cols] for name, values in columns.items()}
    return pl.DataFrame(frame)


def per_symbol_column(single: bool) -> array | list:
    """Where a per-symbol field is recorded event by event: packed floats for a one-symbol
    universe (whose fields are floats), a list of arrays otherwise."""
    return array("d") if single else []


def column_matrix(column: array | list, width: int) -> np.ndarray:
    """A `per_symbol_column` as a ``(events, width)`` float64 matrix."""
    return np.array(column, dtype=np.float64).reshape(len(column), width)


class OrderRecord:
    """Every order the loop dispatched, field by field (see the module's docstring)."""

    def __init__(self, single: bool) -> None:
        self.ts: list[np.datetime64] = []
        self.target_weights = per_symbol_column(single)
        self.quantities = per_symbol_column(single)
        self.flatten_only: list[bool] = []

    def add(self, order: OrderEvent) -> None:
        """Record ``order``."""
        self.ts.append(order.ts)
        self.target_weights.append(order._target_weights)
        self.quantities.append(order._quantities)
        self.flatten_only.append(order.flatten_only)

    def events(self) -> list[OrderEvent]:
        """The orders recorded, oldest first."""
        return [OrderEvent(*fields) for fields in zip(
            self.ts, self.target_weights, self.quantities, self.flatten_only, strict=True)]

    def frame(self, symbols: tuple[str, ...]) -> pl.DataFrame:
        """The orders as rows (see `BacktestResult.orders`)."""
        width = len(symbols)
        quantities = column_matrix(self.quantities, width)
        targets = column_matrix(self.target_weights, width)
        flatten = np.repeat(np.array(self.flatten_only, dtype=bool)[:, None], width, axis=1)
        return _long(np.array(self.ts, dtype="datetime64[us]"), symbols,
                     (quantities != 0) | (targets != 0),
                     {"target_weight": targets, "quantity": quantities,
                      "flatten_only": flatten})


class FillRecord:
    """Every fill the loop dispatched, field by field (see the module's docstring)."""

    def __init__(self, single: bool) -> None:
        self.ts: list[np.datetime64] = []
        self.decision_ts: list[np.datetime64] = []
        self.quantities = per_symbol_column(single)
        self.prices = per_symbol_column(single)
        self.commissions = per_symbol_column(single)
        self.slippage = per_symbol_column(single)
        self.cancelled = per_symbol_column(single)

    def add(self, fill: FillEvent) -> None:
        """Record ``fill``."""
        self.ts.append(fill.ts)
        self.decision_ts.append(fill.decision_ts)
        self.quantities.append(fill._quantities)
        self.prices.append(fill._prices)
        self.commissions.append(fill._commissions)
        self.slippage.append(fill._slippage)
        self.cancelled.append(fill._cancelled)

    def events(self) -> list[FillEvent]:
        """The fills recorded, oldest first."""
        return [FillEvent(*fields) for fields in zip(
            self.ts, self.decision_ts, self.quantities, self.prices, self.commissions,
            self.slippage, self.cancelled, strict=True)]

    def frame(self, symbols: tuple[str, ...]) -> pl.DataFrame:
        """The fills as rows (see `BacktestResult.fills`)."""
        width = len(symbols)
        quantities, prices, commissions, slippage, cancelled = (
            column_matrix(column, width) for column in (
                self.quantities, self.prices, self.commissions, self.slippage,
                self.cancelled))
        decided = np.array(self.decision_ts, dtype="datetime64[us]")
        return _long(
            np.array(self.ts, dtype="datetime64[us]"), symbols,
            (quantities != 0) | (commissions != 0) | (cancelled != 0),
            {"decision_ts": np.repeat(decided[:, None], width, axis=1), "quantity": quantities,
             "price": prices, "commission": commissions, "slippage": slippage,
             "cancelled": cancelled})


def weights_frame(ts: np.ndarray, weights: np.ndarray,
                  symbols: tuple[str, ...]) -> pl.DataFrame:
    """Weights held at each close, rows with a nonzero weight."""
    return _long(ts, symbols, weights != 0, {"weight": weights})


def log_frame(entries: list[LogEntry]) -> pl.DataFrame:
    """Log entries sorted by time (stable: same-time entries keep their order)."""
    ordered = sorted(entries, key=lambda entry: entry.ts)
    return pl.DataFrame({"ts": np.array([e.ts for e in ordered], dtype="datetime64[us]"),
                         "source": [e.source for e in ordered],
                         "message": [e.message for e in ordered]},
                        schema={"ts": pl.Datetime("us"), "source": pl.Utf8,
                                "message": pl.Utf8})
