"""The one bar schema every source is normalised to, and the error raised for bad data.

A bar is one row ``(symbol, ts, open, high, low, close, volume)``. ``ts`` is the bar's event
time as a naive ``Datetime("us")`` whose meaning is UTC: time-zone-aware input is converted to
UTC and the zone dropped, so that every source (exchange CSV, crypto Parquet, packaged data)
compares and joins on the same clock. Frames read from files also carry
``PROVENANCE_COLUMNS`` (``file``, ``line``) so that errors quote rows as the user sees them.

Nothing is guessed: ambiguous times, numbers stored as text and symbols that could not
safely become a path are refused with the file, column and rows named.
"""

from __future__ import annotations

import polars as pl

from factory.data.errors import MAX_EXAMPLES, DataQualityError, QualityFailure, rows_fail
from factory.data.names import (
    SYMBOL_PATTERN,
    SYMBOL_RULE,
    check_symbol,
    is_valid_symbol,
    safe_child,
)
from factory.data.provenance import PROVENANCE_COLUMNS, Locator
from factory.data.timeparse import TimeUnit, to_utc_naive

__all__ = [
    "BAR_COLUMNS",
    "MAX_EXAMPLES",
    "NUMERIC_COLUMNS",
    "PRICE_COLUMNS",
    "PROVENANCE_COLUMNS",
    "SYMBOL_PATTERN",
    "DataQualityError",
    "QualityFailure",
    "check_symbol",
    "is_valid_symbol",
    "normalise_bars",
    "rows_fail",
    "safe_child",
]

BAR_COLUMNS: tuple[str, ...] = ("symbol", "ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")
_PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
_SHOWN_VALUES = 3


def normalise_bars(
    df: pl.DataFrame,
    label: str,
    *,
    sort: bool = True,
    time_unit: TimeUnit | None = None,
    time_format: str | None = None,
) -> pl.DataFrame:
    """Cast a frame of bars to the canonical schema, refusing anything it would have to guess.

    Parameters
    ----------
    df
        Bars with at least the columns in ``BAR_COLUMNS``; ``PROVENANCE_COLUMNS`` are kept
        when present, other columns are dropped. ``ts`` may be a datetime (naive or
        time-zone aware), a date, text (see ``timeparse``), ``YYYYMMDD`` numbers, or numbers
        in ``time_unit``. Prices and volume must be numbers (booleans and text are refused).
        Symbols must satisfy ``names.SYMBOL_PATTERN``.
    label
        The file or label the data came from, quoted in errors.
    sort
        Sort by ``(symbol, ts)``. Pass ``False`` to keep the input's row order, so that row
        numbers in later validation errors point at the rows as given.
    time_unit
        Unit of a numeric ``ts`` that is not ``YYYYMMDD`` (see ``timeparse.TimeUnit``).
    time_format
        A strptime format for ``ts`` that overrides every other rule, applied strictly.

    Returns
    -------
    pl.DataFrame
        ``BAR_COLUMNS`` then whichever ``PROVENANCE_COLUMNS`` were given; ``symbol`` Utf8,
        ``ts`` naive ``Datetime("us")`` in UTC, prices and volume Float64, ``file`` Utf8,
        ``line`` Int64.

    Raises
    ------
    DataQualityError
        If a required column is missing, or values cannot be converted safely; one failure
        per bad column, each naming the rows (file lines when provenance columns are given).
    """
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataQualityError(
            [QualityFailure(label, c, df.height, "missing") for c in missing],
            preamble=f"{label}: missing required column(s); required: {', '.join(BAR_COLUMNS)}",
        )
    locate = Locator(df, label)
    converters = [
        lambda: to_symbols(df["symbol"], locate),
        lambda: to_utc_naive(df["ts"], locate, unit=time_unit, fmt=time_format),
        *(lambda c=c: to_float(df[c], locate) for c in NUMERIC_COLUMNS),
    ]
    columns, failures = [], []
    for convert in converters:
        try:
            columns.append(convert())
        except DataQualityError as error:
            failures.extend(error.failures)
    if failures:
        raise DataQualityError(failures)
    provenance = [_provenance(df[c]) for c in PROVENANCE_COLUMNS if c in df.columns]
    out = pl.DataFrame([*columns, *provenance])
    return out.sort(["symbol", "ts"], maintain_order=True) if sort else out


def _provenance(values: pl.Series) -> pl.Series:
    """Cast a provenance column: ``file`` to Utf8, ``line`` to Int64."""
    return values.cast(pl.Int64 if values.name == "line" else pl.Utf8)


def to_symbols(values: pl.Series, locate: Locator) -> pl.Series:
    """Cast symbols to Utf8 and refuse any that could not safely become a path."""
    symbols = values.cast(pl.Utf8)
    bad = (symbols.is_not_null() & ~symbols.str.contains(SYMBOL_PATTERN)).arg_true()
    if bad.len():
        shown = symbols.gather(bad).unique(maintain_order=True).head(_SHOWN_VALUES).to_list()
        detail = f"; bad value(s): {', '.join(repr(v[:70]) for v in shown)}"
        raise DataQualityError([locate.failure(values.name, bad.to_list(), SYMBOL_RULE, detail)])
    return symbols


def to_float(values: pl.Series, locate: Locator) -> pl.Series:
    """Cast a numeric column to Float64; refuse booleans, text and other non-number types."""
    dtype = values.dtype
    if dtype.is_numeric() or dtype == pl.Null:
        return values.cast(pl.Float64)
    if dtype == pl.Utf8:
        bad = (values.is_not_null() & ~values.str.contains(_PLAIN_NUMBER)).arg_true()
        problem = "has type String (text); numbers stored as text are refused, not converted"
        if bad.len():
            failure = locate.failure(values.name, bad.to_list(), "is a plain number")
            problem = f"has type String (text): {failure.problem}; bad value {values[bad[0]]!r}"
        rows = bad.len() or values.len()
        raise DataQualityError([QualityFailure(locate.source, values.name, rows, problem)])
    problem = f"has type {dtype}, not numbers"
    raise DataQualityError([QualityFailure(locate.source, values.name, values.len(), problem)])
