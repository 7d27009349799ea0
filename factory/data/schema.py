"""The one bar schema every source is normalised to, and the error raised for bad data.

A bar is one row ``(symbol, ts, open, high, low, close, volume)``. ``ts`` is the bar's event
time as a naive ``Datetime("us")`` whose meaning is UTC: time-zone-aware input is converted to
UTC and the zone dropped, so that every source (exchange CSV, crypto Parquet, packaged data)
compares and joins on the same clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

BAR_COLUMNS: tuple[str, ...] = ("symbol", "ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
NUMERIC_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "volume")

MAX_EXAMPLES = 5
"""How many offending row numbers an error message quotes."""

# Epoch numbers are read in the unit their magnitude implies. For any time between 1973 and
# 5138, seconds lie below 1e11, milliseconds in [1e11, 1e14), microseconds in [1e14, 1e17).
_EPOCH_UNITS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))


@dataclass(frozen=True)
class QualityFailure:
    """One failed check: which file, which column(s), how many rows and what went wrong.

    Parameters
    ----------
    source
        The file or label the data came from.
    column
        The column (or comma-separated columns) the check is about.
    rows
        Number of offending rows.
    problem
        What is wrong, e.g. ``"3 rows fail 'high >= low' (e.g. rows 10, 11, 57)"``.
    """

    source: str
    column: str
    rows: int
    problem: str

    def describe(self) -> str:
        """Return the one-line, human-readable description of this failure."""
        return f"{self.source}: column '{self.column}': {self.problem}"


def rows_fail(rows: int, rule: str, examples: Sequence[int] = ()) -> str:
    """Phrase "N rows fail 'rule' (e.g. rows a, b, c)" with at most ``MAX_EXAMPLES`` examples."""
    noun = "row fails" if rows == 1 else "rows fail"
    text = f"{rows} {noun} '{rule}'"
    shown = [str(i) for i in list(examples)[:MAX_EXAMPLES]]
    if shown:
        text += f" (e.g. {'row' if len(shown) == 1 else 'rows'} {', '.join(shown)})"
    return text


class DataQualityError(ValueError):
    """Bad input data, named down to the file, the column and the offending rows.

    Parameters
    ----------
    failures
        Every failed check, in the order they were checked; at least one.
    preamble
        Optional first line put before the per-failure lines.

    Attributes
    ----------
    source, column, rows
        File/label, column(s) and offending-row count of the first failure.
    failures
        All failures.
    preamble
        The preamble given, if any.
    """

    def __init__(self, failures: Sequence[QualityFailure], preamble: str = "") -> None:
        if not failures:
            raise ValueError("DataQualityError needs at least one failure")
        self.failures = tuple(failures)
        first = self.failures[0]
        self.source = first.source
        self.column = first.column
        self.rows = first.rows
        self.preamble = preamble
        lines = [f.describe() for f in self.failures]
        if len(lines) > 1 and not preamble:
            preamble = f"{first.source}: {len(lines)} problems:"
        if preamble:
            lines = [preamble, *(f"  - {line}" for line in lines)]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[type[DataQualityError], tuple[tuple[QualityFailure, ...], str]]:
        """Pickle by failures, so the error survives process pools and task runners."""
        return DataQualityError, (self.failures, self.preamble)


def normalise_bars(df: pl.DataFrame, label: str, *, sort: bool = True) -> pl.DataFrame:
    """Cast a frame of bars to the canonical schema.

    Parameters
    ----------
    df
        Bars with at least the columns in ``BAR_COLUMNS`` (extra columns are dropped).
        ``ts`` may be a datetime (naive or time-zone aware), a date, a string, or epoch
        seconds/milliseconds/microseconds.
    label
        The file or label the data came from, quoted in errors.
    sort
        Sort by ``(symbol, ts)``. Pass ``False`` to keep the input's row order, so that row
        numbers in later validation errors point at the rows as given.

    Returns
    -------
    pl.DataFrame
        ``BAR_COLUMNS`` only; ``symbol`` Utf8, ``ts`` naive ``Datetime("us")`` in UTC,
        prices and volume Float64.

    Raises
    ------
    DataQualityError
        If a required column is missing, or values cannot be converted (e.g. unparseable
        timestamps or non-numeric prices).
    """
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataQualityError(
            [QualityFailure(label, c, df.height, "missing") for c in missing],
            preamble=f"{label}: missing required column(s); required: {', '.join(BAR_COLUMNS)}",
        )
    out = df.select(
        pl.col("symbol").cast(pl.Utf8),
        _to_utc_naive(df["ts"], label),
        *(_to_float(df[c], label) for c in NUMERIC_COLUMNS),
    )
    return out.sort(["symbol", "ts"], maintain_order=True) if sort else out


def _to_float(values: pl.Series, label: str) -> pl.Series:
    """Cast a numeric column to Float64, naming the rows that are not numbers."""
    cast = values.cast(pl.Float64, strict=False)
    _raise_for_new_nulls(values, cast, label, "numeric")
    return cast


def _to_utc_naive(values: pl.Series, label: str) -> pl.Series:
    """Convert a time column of any supported type to naive ``Datetime("us")`` in UTC."""
    dtype = values.dtype
    if dtype == pl.Utf8:
        parsed = values.str.strip_chars().str.to_datetime(time_unit="us", strict=False)
        _raise_for_new_nulls(values, parsed, label, "parseable timestamp")
    elif dtype.is_integer() or dtype.is_float():
        parsed = _from_epoch(values)
    elif dtype == pl.Date or isinstance(dtype, pl.Datetime):
        parsed = values.cast(pl.Datetime("us", getattr(dtype, "time_zone", None)))
    else:
        raise DataQualityError(
            [QualityFailure(label, values.name, values.len(), f"has unsupported type {dtype}")]
        )
    if isinstance(parsed.dtype, pl.Datetime) and parsed.dtype.time_zone is not None:
        parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return parsed.cast(pl.Datetime("us")).alias(values.name)


def _from_epoch(values: pl.Series) -> pl.Series:
    """Read epoch numbers in the unit their magnitude implies (s, ms, us or ns)."""
    magnitude = values.abs().max()
    unit = "ns"
    if magnitude is not None:
        unit = next((u for bound, u in _EPOCH_UNITS if magnitude < bound), "ns")
    return pl.from_epoch(values.cast(pl.Int64, strict=False), time_unit=unit)


def _raise_for_new_nulls(raw: pl.Series, cast: pl.Series, label: str, rule: str) -> None:
    """Raise if a cast turned non-null values into nulls (i.e. they could not be converted)."""
    bad = (cast.is_null() & raw.is_not_null()).arg_true()
    if bad.len():
        raise DataQualityError(
            [QualityFailure(label, raw.name, bad.len(), rows_fail(bad.len(), rule, bad.to_list()))]
        )
