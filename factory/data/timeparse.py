"""Turn a user's time column into naive UTC datetimes, or refuse it: never guess.

Rules, in order:

* Date and datetime columns are taken as they are (zone-aware ones converted to UTC).
* An explicit ``fmt`` (strptime) overrides everything and is applied strictly.
* Numbers (or text holding only numbers) are dates only when every value is a valid
  ``YYYYMMDD`` between 1800 and 2200; anything else needs a ``unit`` (see ``TimeUnit``), and
  the refusal suggests the unit the magnitude points to.
* Text is parsed as ISO 8601 when every value is ISO-like. Otherwise every format in
  ``DATE_FORMATS`` is tried on the whole column; the ones that read every value must agree
  on every row, else the column is ambiguous (``04/01/2015``: 4 January or April 1?) and
  refused with both readings.
* Every result must lie between 1800 and 2200: a time outside is a unit or format mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

import polars as pl

from factory.data.errors import DataQualityError, QualityFailure, refuse
from factory.data.provenance import Locator

TimeUnit = Literal["s", "ms", "us", "ns", "days", "excel"]
"""Units of numeric time columns: epoch seconds, milliseconds, microseconds, nanoseconds;
days since 1970-01-01; Excel serial days (origin 1899-12-30, fractions are time of day)."""

TIME_UNITS: tuple[str, ...] = get_args(TimeUnit)

FIRST_YEAR, LAST_YEAR = 1800, 2200
"""No real bar lies outside these years: a time outside them is a unit or format mistake."""

UNIT_NAMES = {
    "s": "epoch seconds",
    "ms": "epoch milliseconds",
    "us": "epoch microseconds",
    "ns": "epoch nanoseconds",
    "days": "days since 1970-01-01",
    "excel": "Excel serial days",
}

DATE_FORMATS: tuple[str, ...] = (
    "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%m-%d-%Y", "%Y%m%d", "%Y.%m.%d",
    "%d/%m/%y", "%m/%d/%y", "%d.%m.%y", "%d-%m-%y", "%m-%d-%y", "%d-%b-%Y", "%d %b %Y",
)  # fmt: skip
"""Date formats tried on non-ISO text, each with an optional time of day (``CLOCK_FORMATS``)."""

CLOCK_FORMATS: tuple[str, ...] = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S%.f")

_SHAPES = {
    "%d": r"\d{1,2}", "%m": r"\d{1,2}", "%Y": r"\d{4}", "%y": r"\d{2}", "%b": "[A-Za-z]{3}",
    "%H": r"\d{1,2}", "%M": r"\d{2}", "%S": r"\d{2}", "%.f": r"\.\d{1,9}",
}  # fmt: skip
"""Regex for each strptime token, so a format only sees values of its exact shape (chrono
alone reads "2021014" as %Y%m%d and "15" as %Y)."""

_ISO = (
    r"^(?P<y>\d{4})[-/](?P<m>\d{1,2})[-/](?P<d>\d{1,2})"
    r"(?:[T ](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r" ?(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>\d{2}):?(?P<om>\d{2})?)?)?$"
)
ISO_LABEL = "YYYY-MM-DD[ hh:mm[:ss]]"
_NUMBER = r"^[+-]?\d+(?:\.\d*)?$"
_EPOCH = datetime(1970, 1, 1)
_EXCEL_ORIGIN = datetime(1899, 12, 30)
_DAY_US = 86_400_000_000
_US_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001, "days": _DAY_US, "excel": _DAY_US}
_EXCEL_EPOCH_DAY = 25_569  # 1970-01-01 as an Excel serial day
_EPOCH_BOUNDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))  # 1973-5138 by magnitude
_SAMPLE = 256


@dataclass(frozen=True)
class _Reading:
    """A whole column read with one date format: parsed times and, per row, the format."""

    label: str
    parsed: pl.Series
    formats: pl.Series

    def misses(self, text: pl.Series) -> pl.Series:
        """Positions of non-null values this reading could not parse."""
        return (self.parsed.is_null() & text.is_not_null()).arg_true()


def to_utc_naive(
    values: pl.Series, locate: Locator, *, unit: TimeUnit | None = None, fmt: str | None = None
) -> pl.Series:
    """Convert a time column to naive ``Datetime("us")`` in UTC, or refuse it.

    Parameters
    ----------
    values
        The time column (any dtype); its name is quoted in errors.
    locate
        Names offending rows as the user sees them.
    unit
        Unit of a numeric column (see ``TimeUnit``); required unless it holds ``YYYYMMDD``.
    fmt
        A strptime format that overrides every rule and is applied strictly.

    Returns
    -------
    pl.Series
        Naive ``Datetime("us")`` meaning UTC, same length and order, named like ``values``.

    Raises
    ------
    DataQualityError
        Naming the column, the rows and what to pass (``--time-unit``, ``--time-format``).
    """
    dtype = values.dtype
    if isinstance(dtype, pl.Categorical | pl.Enum):
        values, dtype = values.cast(pl.Utf8), pl.Utf8
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        parsed = values.cast(pl.Datetime("us", getattr(dtype, "time_zone", None)))
    elif fmt is not None:
        parsed = _with_format(values.cast(pl.Utf8).str.strip_chars(), fmt, locate)
    elif dtype == pl.Utf8:
        parsed = _from_text(values.str.strip_chars(), locate, unit)
    elif dtype.is_numeric():
        parsed = _from_numbers(values, locate, unit)
    else:
        raise refuse(locate.source, values.name, values.len(), f"has type {dtype}, not times")
    if isinstance(parsed.dtype, pl.Datetime) and parsed.dtype.time_zone is not None:
        parsed = parsed.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    parsed = parsed.cast(pl.Datetime("us")).alias(values.name)
    _check_years(parsed, locate)
    return parsed


def _check_years(parsed: pl.Series, locate: Locator) -> None:
    """Refuse times outside ``FIRST_YEAR``-``LAST_YEAR``."""
    inside = parsed.is_between(datetime(FIRST_YEAR, 1, 1), datetime(LAST_YEAR + 1, 1, 1), "left")
    bad = (parsed.is_not_null() & ~inside).arg_true()
    if bad.len():
        rule = f"is a time between {FIRST_YEAR} and {LAST_YEAR}"
        raise DataQualityError([locate.failure(parsed.name, bad.to_list(), rule)])


def _with_format(text: pl.Series, fmt: str, locate: Locator) -> pl.Series:
    """Parse text strictly with an explicit strptime format, naming the rows it fails."""
    try:
        parsed = text.str.strptime(pl.Datetime("us"), fmt, strict=False)
    except pl.exceptions.PolarsError as error:
        problem = f"--time-format {fmt!r} is not a usable strptime format ({error})"
        raise refuse(locate.source, text.name, text.len(), problem.splitlines()[0]) from None
    bad = (parsed.is_null() & text.is_not_null()).arg_true()
    if bad.len():
        detail = f"; first bad value {text[bad[0]]!r}"
        raise DataQualityError([locate.failure(text.name, bad.to_list(), f"matches {fmt}", detail)])
    return parsed


def _from_text(text: pl.Series, locate: Locator, unit: TimeUnit | None) -> pl.Series:
    """Parse a text column: numbers, ISO 8601, or exactly one of ``DATE_FORMATS``."""
    present = text.drop_nulls()
    if present.len() and present.str.contains(_NUMBER).all():
        integral = not present.str.contains(r"\.").any()
        numbers = text.cast(pl.Int64 if integral else pl.Float64, strict=False)
        if numbers.null_count() > text.null_count():  # too long for Int64
            numbers = text.cast(pl.Float64)
        return _from_numbers(numbers, locate, unit)
    iso = _Reading(ISO_LABEL, _parse_iso(text), pl.Series(dtype=pl.Utf8))
    if not iso.misses(text).len():
        return iso.parsed
    sample = present.head(_SAMPLE)
    readings = [_read(text, f) for f in DATE_FORMATS if _fits(sample, f)]
    complete = [r for r in readings if not r.misses(text).len()]
    if not complete:
        raise DataQualityError([_best_failure(text, iso, locate)])
    first = complete[0]
    for other in complete[1:]:
        differ = (~first.parsed.eq_missing(other.parsed)).arg_true()
        if differ.len():
            raise DataQualityError([_ambiguous(text, first, other, differ.to_list(), locate)])
    return first.parsed


def _parse_iso(text: pl.Series) -> pl.Series:
    """Parse ISO-8601-like text; null where a value is not ISO-like or not a valid time."""
    parts = text.str.extract_groups(_ISO).struct.unnest()

    def padded(name: str, default: str = "0") -> pl.Expr:
        return pl.col(name).fill_null(default).str.pad_start(2, "0")

    clock = pl.concat_str(
        "y", pl.lit("-"), padded("m"), pl.lit("-"), padded("d"), pl.lit(" "),
        padded("H"), pl.lit(":"), padded("M"), pl.lit(":"), padded("S"),
    )  # fmt: skip
    micros = pl.col("f").str.slice(0, 6).str.pad_end(6, "0").cast(pl.Int64).fill_null(0)
    sign = pl.when(pl.col("sign") == "-").then(-1).otherwise(1)
    offset = sign * (pl.col("oh").cast(pl.Int64) * 60 + pl.col("om").cast(pl.Int64).fill_null(0))
    utc = (
        pl.when(pl.col("y").is_not_null())
        .then(clock)
        .str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
        + pl.duration(microseconds=micros)
        - pl.duration(minutes=offset.fill_null(0))
    )
    return parts.select(utc.alias(text.name)).to_series()


def _shape(fmt: str) -> str:
    """The anchored regex of values that ``fmt`` may read (see ``_SHAPES``)."""
    if fmt.startswith("%Y%m%d"):  # no separators: month and day must be two digits
        return rf"^\d{{8}}{_pattern(fmt[6:])}$"
    return f"^{_pattern(fmt)}$"


def _pattern(fmt: str) -> str:
    """Regex for a strptime format: tokens by ``_SHAPES``, ``.`` escaped, the rest literal."""
    pieces = re.split(r"(%\.f|%[a-zA-Z])", fmt)
    return "".join(_SHAPES.get(piece, piece.replace(".", r"\.")) for piece in pieces)


def _read(text: pl.Series, date_format: str) -> _Reading:
    """Read every value with ``date_format`` plus whichever time of day its shape has."""
    frame = text.to_frame("t")
    variants = [date_format + clock for clock in CLOCK_FORMATS]
    fits = [pl.col("t").str.contains(_shape(v)) for v in variants]
    parsed = pl.coalesce(
        pl.when(fit).then(pl.col("t").str.strptime(pl.Datetime("us"), v, strict=False))
        for fit, v in zip(fits, variants, strict=True)
    )
    formats = pl.coalesce(pl.when(f).then(pl.lit(v)) for f, v in zip(fits, variants, strict=True))
    out = frame.select(parsed.alias(text.name), formats.alias("format"))
    return _Reading(date_format, out[text.name], out["format"])


def _fits(sample: pl.Series, date_format: str) -> bool:
    """Whether ``date_format`` reads every value of a (small) sample."""
    return sample.len() > 0 and not _read(sample, date_format).misses(sample).len()


def _best_failure(text: pl.Series, iso: _Reading, locate: Locator) -> QualityFailure:
    """Name the rows that fail under the format that reads the most rows."""
    readings = [iso, *(_read(text, f) for f in DATE_FORMATS)]
    best = min(readings, key=lambda r: r.misses(text).len())  # first (ISO) wins a tie
    bad = best.misses(text)
    detail = f"; first bad value {text[bad[0]]!r}; pass --time-format FORMAT if it is one format"
    return locate.failure(text.name, bad.to_list(), f"is a time like {best.label}", detail)


def _ambiguous(
    text: pl.Series, first: _Reading, other: _Reading, rows: list[int], locate: Locator
) -> QualityFailure:
    """Describe a column two formats read completely but differently."""
    row = rows[0]
    fa, fb = first.formats[row], other.formats[row]
    readings = f"{_show(first.parsed[row])} {_order(fa)} or {_show(other.parsed[row])} {_order(fb)}"
    problem = (
        f"ambiguous dates: {fa} and {fb} read {len(rows)} row{'s' * (len(rows) > 1)} differently "
        f"(e.g. {locate.where(rows)}): {text[row]!r} is {readings}: "
        f"pass --time-format {fa} or {fb}"
    )
    return QualityFailure(locate.source, text.name, len(rows), problem)


def _order(fmt: str) -> str:
    """``"day-first"``/``"month-first"`` for a format with both, else the format."""
    if "%d" in fmt and "%m" in fmt:
        return "day-first" if fmt.index("%d") < fmt.index("%m") else "month-first"
    return f"by {fmt}"


def _show(moment: datetime) -> str:
    """A date, with its time of day unless it is midnight."""
    return moment.strftime("%Y-%m-%d") if moment.time() == datetime.min.time() else str(moment)


def _from_numbers(values: pl.Series, locate: Locator, unit: TimeUnit | None) -> pl.Series:
    """Read a numeric column: ``YYYYMMDD`` dates, or numbers in an explicit unit."""
    if values.dtype == pl.Decimal:
        values = values.cast(pl.Float64)
    if unit is not None:
        return _by_unit(values, unit, locate)
    dates = _yyyymmdd(values, locate)
    if dates is None:
        problem = f"holds numbers, not times: {_unit_hint(values)}"
        raise refuse(locate.source, values.name, values.len(), problem)
    return dates


def _yyyymmdd(values: pl.Series, locate: Locator) -> pl.Series | None:
    """Read 8-digit ``YYYYMMDD`` numbers as dates; ``None`` if they are not that shape."""
    present = values.drop_nulls()
    if values.dtype.is_float():
        present = present.filter(present.is_finite() & (present == present.floor()))
        if present.len() < values.drop_nulls().len():
            return None
    if not present.is_between(18_000_101, 22_001_231).all():
        return None
    text = values.cast(pl.Int64).cast(pl.Utf8)
    parsed = text.str.strptime(pl.Datetime("us"), "%Y%m%d", strict=False)
    bad = (parsed.is_null() & values.is_not_null()).arg_true()
    if bad.len():
        rule = "is a valid YYYYMMDD date"
        raise DataQualityError([locate.failure(values.name, bad.to_list(), rule)])
    return parsed


def _by_unit(values: pl.Series, unit: TimeUnit, locate: Locator) -> pl.Series:
    """Convert numbers in ``unit`` to datetimes, refusing times outside the plausible years."""
    floats = values.cast(pl.Float64)
    micros = (floats - _EXCEL_EPOCH_DAY if unit == "excel" else floats) * _US_PER[unit]
    bounds = [(datetime(y, 1, 1) - _EPOCH) // timedelta(microseconds=1)
              for y in (FIRST_YEAR, LAST_YEAR + 1)]  # fmt: skip
    bad = (values.is_not_null() & ~micros.is_between(*bounds, closed="left")).arg_true()
    if bad.len():
        rule = f"is a time between {FIRST_YEAR} and {LAST_YEAR} when read as {UNIT_NAMES[unit]}"
        raise DataQualityError([locate.failure(values.name, bad.to_list(), rule)])
    if values.dtype.is_integer() and unit != "excel":
        exact = values.cast(pl.Int64)
        micros = exact // 1000 if unit == "ns" else exact * int(_US_PER[unit])
    elif unit in ("days", "excel"):
        micros = (micros / 1000).round() * 1000  # day fractions: to the millisecond
    else:
        micros = micros.round()
    return micros.cast(pl.Int64).cast(pl.Datetime("us")).alias(values.name)


def _unit_hint(values: pl.Series) -> str:
    """Suggest the unit a numeric time column's magnitude points to, with an example."""
    present = values.cast(pl.Float64).drop_nulls()
    present = present.filter(present.is_finite())
    choose = "pass --time-unit (one of " + ", ".join(TIME_UNITS) + ") or --time-format"
    if present.is_empty():
        return choose
    example, magnitude = present[0], float(present.abs().median())
    shown = str(int(example)) if example == int(example) else repr(example)
    if magnitude < 1e5:
        return (
            f"looks like day counts: {shown} is {_reading(example, 'excel')} as Excel serial "
            f"days (pass --time-unit excel) or {_reading(example, 'days')} as days since "
            "1970-01-01 (--time-unit days)"
        )
    if magnitude < 1e8:
        return f"matches no known time unit: {choose}"
    unit = next((u for bound, u in _EPOCH_BOUNDS if magnitude < bound), "ns")
    return (
        f"looks like {UNIT_NAMES[unit]} ({shown} is {_reading(example, unit)}): "
        f"pass --time-unit {unit}"
    )


def _reading(number: float, unit: str) -> str:
    """What ``number`` means in ``unit``, as text (for hints)."""
    origin = _EXCEL_ORIGIN if unit == "excel" else _EPOCH
    try:
        return _show(origin + timedelta(microseconds=round(number * _US_PER[unit])))
    except (OverflowError, ValueError):
        return "out of range"
