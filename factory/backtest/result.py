"""What a backtest or a paper-trading session produced, as plain polars frames."""

from __future__ import annotations

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
    frame = {"ts": ts[rows].astype("datetime64[us]"),
             "symbol": np.asarray(symbols, dtype=object)[cols]}
    frame |= {name: values[rows, cols] for name, values in columns.items()}
    return pl.DataFrame(frame, schema_overrides={"symbol": pl.Utf8})


def orders_frame(orders: list[OrderEvent], symbols: tuple[str, ...]) -> pl.DataFrame:
    """The orders as rows (see `BacktestResult.orders`)."""
    width = len(symbols)
    ts = np.array([o.ts for o in orders], dtype="datetime64[us]")
    quantities = np.array([o.quantities for o in orders]).reshape(len(orders), width)
    targets = np.array([o.target_weights for o in orders]).reshape(len(orders), width)
    flatten = np.repeat(np.array([o.flatten_only for o in orders], dtype=bool)[:, None],
                        width, axis=1)
    return _long(ts, symbols, (quantities != 0) | (targets != 0),
                 {"target_weight": targets, "quantity": quantities, "flatten_only": flatten})


def fills_frame(fills: list[FillEvent], symbols: tuple[str, ...]) -> pl.DataFrame:
    """The fills as rows (see `BacktestResult.fills`)."""
    width = len(symbols)

    def stacked(name: str) -> np.ndarray:
        return np.array([getattr(f, name) for f in fills]).reshape(len(fills), width)

    quantities, commissions = stacked("quantities"), stacked("commissions")
    cancelled = stacked("cancelled")
    decided = np.array([f.decision_ts for f in fills], dtype="datetime64[us]")
    return _long(
        np.array([f.ts for f in fills], dtype="datetime64[us]"), symbols,
        (quantities != 0) | (commissions != 0) | (cancelled != 0),
        {"decision_ts": np.repeat(decided[:, None], width, axis=1), "quantity": quantities,
         "price": stacked("prices"), "commission": commissions, "slippage": stacked("slippage"),
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
