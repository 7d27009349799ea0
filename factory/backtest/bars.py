"""Checking a frame of bars and laying it out densely, one row per timestamp.

Both data sources of the engine (`HistoricBars`, `ReplayFeed`) go through `check_bars` and
`to_block`, and both make their market events with the `BarBlock` (`BarBlock.events`, or
`BarBlock.event` one at a time): identical bars give identical events whatever the source.

The frame is what the lake returns: ``symbol, ts, open, high, low, close, volume``, any other
column ignored. Row numbers in error messages count from 0 in the frame as passed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from factory.backtest.events import MarketEvent

BAR_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")
SHOWN_ROWS = 10
SHOWN_SYMBOLS = 3
ROW = "_row"
"""Row-number column that `refuse_rows` reads."""
EVENT_CHUNK = 4096
"""Rows whose values `BarBlock.events` turns into Python objects at a time."""


@dataclass(frozen=True)
class BarBlock:
    """Bars of a fixed universe at consecutive timestamps, dense.

    Attributes
    ----------
    ts : numpy.ndarray
        Sorted, unique ``datetime64[us]`` timestamps, shape ``(T,)``.
    open, high, low, close, volume : numpy.ndarray
        Float64, shape ``(T, S)``, column ``j`` for the universe's ``j``-th symbol; NaN where a
        symbol has no bar at that time. Read-only.
    stamps : numpy.ndarray
        ``ts`` as int64 microseconds since the epoch (`MarketEvent.stamp`).
    """

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    stamps: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        stamps = self.ts.astype("datetime64[us]").view(np.int64)
        stamps.flags.writeable = False
        object.__setattr__(self, "stamps", stamps)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def _columns(self) -> tuple[np.ndarray, ...]:
        return self.open, self.high, self.low, self.close, self.volume

    def event(self, row: int) -> MarketEvent:
        """The market event of the ``row``-th timestamp: its arrays are read-only views (for
        one symbol, floats: ``factory.backtest.scalar``)."""
        if self.open.shape[1] == 1:
            values = (column.item(row, 0) for column in self._columns)
        else:
            values = (column[row] for column in self._columns)
        return MarketEvent(self.ts[row], *values, stamp=self.stamps.item(row))

    def events(self) -> Iterator[MarketEvent]:
        """The market events of every row, each equal to `event` of its row; made
        `EVENT_CHUNK` rows at a time, which saves most of the per-row indexing."""
        for first in range(0, len(self), EVENT_CHUNK):
            rows = slice(first, first + EVENT_CHUNK)
            if self.open.shape[1] == 1:
                values = [column[rows, 0].tolist() for column in self._columns]
            else:
                values = [column[rows] for column in self._columns]
            for ts, open_, high, low, close, volume, stamp in zip(
                    self.ts[rows], *values, self.stamps[rows].tolist(), strict=True):
                yield MarketEvent(ts, open_, high, low, close, volume, stamp)


def check_bars(bars: pl.DataFrame, symbols: Sequence[str] | None = None,
               what: str = "bars") -> pl.DataFrame:
    """Validate a frame of bars and return its bar columns with canonical types.

    Parameters
    ----------
    bars : polars.DataFrame
        ``symbol, ts, open, high, low, close, volume``. Each symbol's rows in time order (the
        lake returns them sorted by symbol then time); symbols may interleave.
    symbols : sequence of str, optional
        The universe: a symbol outside it is refused.
    what : str
        How errors name the frame.

    Returns
    -------
    polars.DataFrame
        The seven columns: ``symbol`` Utf8, ``ts`` Datetime("us") naive UTC (an aware time is
        converted to UTC; a Date becomes midnight), prices and volume Float64; row order kept.

    Raises
    ------
    ValueError
        On a missing column, an empty frame, a wrong type, a null, a price that is not
        positive and finite, a negative or non-finite volume, a symbol outside ``symbols``,
        two bars of a symbol at the same time, or a symbol's rows out of time order; the
        message names the column, the symbol and the rows.
    """
    if not isinstance(bars, pl.DataFrame):
        raise ValueError(f"{what} must be a polars DataFrame, got {type(bars).__name__}")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"{what} lack the columns {missing}; bars need {list(BAR_COLUMNS)}")
    if bars.height == 0:
        raise ValueError(f"{what} hold no rows")
    _check_types(bars, what)
    frame = bars.select(
        pl.col("symbol").cast(pl.Utf8), canonical_ts(bars.schema["ts"]),
        *(pl.col(c).cast(pl.Float64) for c in VALUE_COLUMNS),
    ).with_row_index(ROW)
    for column in BAR_COLUMNS:
        refuse_rows(frame, pl.col(column).is_null(), what, f"column {column!r} is null")
    for column in PRICE_COLUMNS:
        refuse_rows(frame, ~(pl.col(column).is_finite() & (pl.col(column) > 0)), what,
                    f"column {column!r} is not a positive finite price")
    refuse_rows(frame, ~(pl.col("volume").is_finite() & (pl.col("volume") >= 0)), what,
                "column 'volume' is negative or not finite")
    if symbols is not None:
        refuse_rows(frame, ~pl.col("symbol").is_in(list(symbols)), what,
                    f"the symbol is not in the universe {list(symbols)[:SHOWN_ROWS]}")
    refuse_rows(frame, pl.struct("symbol", "ts").is_duplicated(), what,
                "two or more bars of the symbol share a ts")
    refuse_rows(frame, pl.col("ts").diff().over("symbol") < pl.duration(microseconds=0), what,
                "the symbol's bar is earlier than the row before it (sort by symbol, ts)")
    return frame.drop(ROW)


def _check_types(bars: pl.DataFrame, what: str) -> None:
    """Refuse a ``ts`` that is not a time or a value column that is not numeric."""
    ts_type = bars.schema["ts"]
    if not isinstance(ts_type, pl.Datetime | pl.Date):
        raise ValueError(f"{what}: column 'ts' must be Datetime or Date, got {ts_type}")
    for column in VALUE_COLUMNS:
        if not bars.schema[column].is_numeric():
            raise ValueError(f"{what}: column {column!r} must be numeric, got "
                             f"{bars.schema[column]}")


def canonical_ts(ts_type: pl.DataType) -> pl.Expr:
    """The ``ts`` column as naive UTC microseconds, given its type (Datetime or Date)."""
    ts = pl.col("ts")
    if isinstance(ts_type, pl.Datetime) and ts_type.time_zone is not None:
        ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return ts.cast(pl.Datetime("us"))


def refuse_rows(frame: pl.DataFrame, bad: pl.Expr, what: str, problem: str) -> None:
    """Raise ValueError naming the symbols and rows where ``bad`` holds, if any.

    ``frame`` has a ``symbol`` column and the row numbers in `ROW`.
    """
    rows = frame.filter(bad.fill_null(False))
    if rows.height == 0:
        return
    per_symbol = rows.group_by("symbol", maintain_order=True).agg(pl.col(ROW))
    parts = [f"symbol {symbol!r} rows {found[:SHOWN_ROWS]}"
             for symbol, found in per_symbol.head(SHOWN_SYMBOLS).iter_rows()]
    more = (f" and {per_symbol.height - SHOWN_SYMBOLS} more symbols"
            if per_symbol.height > SHOWN_SYMBOLS else "")
    raise ValueError(f"{what}: {problem}: {'; '.join(parts)}{more} ({rows.height} rows)")


def to_block(checked: pl.DataFrame, symbols: Sequence[str]) -> BarBlock:
    """Lay checked bars out densely: one row per distinct ``ts``, one column per symbol.

    Parameters
    ----------
    checked : polars.DataFrame
        Output of `check_bars` against ``symbols``.
    symbols : sequence of str
        The universe; its order is the column order.

    Returns
    -------
    BarBlock
        NaN where a symbol has no bar at a time.
    """
    times, time_of_row = np.unique(checked["ts"].to_numpy(), return_inverse=True)
    column_of = {symbol: j for j, symbol in enumerate(symbols)}
    symbol_of_row = checked["symbol"].replace_strict(column_of, return_dtype=pl.Int64).to_numpy()
    arrays = {}
    for column in VALUE_COLUMNS:
        dense = np.full((len(times), len(symbols)), np.nan)
        dense[time_of_row, symbol_of_row] = checked[column].to_numpy()
        dense.flags.writeable = False
        arrays[column] = dense
    times = times.astype("datetime64[us]")
    times.flags.writeable = False
    return BarBlock(ts=times, **arrays)
