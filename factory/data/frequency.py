"""Each symbol's bar frequency and calendar: detected from its (UTC) timestamps, checked on
every ingest, stored by the lake and used to annualise (rule 10).

Counting bars is not a frequency: two daily files stamped 00:00 and 16:00 hold two bars a
date, and a Sharpe ratio annualised from that count is sqrt(2) too high. So `detect_frequency`
reads bar size and calendar by documented rules, `check_bar_series` refuses a batch that
cannot be one bar series with the lake's, and metrics use the stored `periods_per_year`.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import gcd

import numpy as np
import polars as pl

from factory.data.provenance import row_word
from factory.data.schema import DataQualityError, QualityFailure

CALENDARS: tuple[str, ...] = ("equity", "fx", "crypto")
TRADING_DAYS: dict[str, float] = {"equity": 252.0, "fx": 260.0, "crypto": 365.0}
DAY = 86_400
DAILY_MIN_GAP = 20 * 3600  # seconds: closer daily bars clash; 23 h (a DST change) is legal
DST_TOLERANCE_MINUTES = 60
ALIGN_HINT = "pass --align-daily-bars to stamp daily bars by date, or ingest one file"
_US = 1_000_000
_DAY_US = DAY * _US
# (median spacing below this many days, label, bar seconds, periods per year or by calendar)
_LONGER = ((4, "1d", DAY, None), (10, "1w", 7 * DAY, 52.0), (45, "1mo", 2_629_746, 12.0),
           (120, "3mo", 7_889_238, 4.0), (400, "1y", 31_556_952, 1.0))
_CARRIES = 1 / 21  # a weekday "carries bars" with at least a third of its even share (1/7)
_FX_INTRADAY_COVERAGE = 0.8
_FX_DAILY_COVERAGE = 0.985
_FX_DAILY_SPAN_DAYS = 365
_UNITS = ((DAY, "d"), (3600, "h"), (60, "m"), (1, "s"))


@dataclass(frozen=True)
class BarFrequency:
    """How often a symbol has a bar, on which calendar, and so how many bars make a year.

    Attributes
    ----------
    bar_seconds
        The exact spacing of intraday bars; 86400 daily, 604800 weekly, the mean Gregorian
        month (2629746) monthly, a quarter or a year for longer bars.
    label
        ``"15m"``, ``"1h"``, ``"4h"``, ``"1d"``, ``"1w"``, ``"1mo"``, ``"3mo"`` or ``"1y"``.
    calendar
        ``"equity"`` (sessions and holidays), ``"fx"`` (24 hours, 5 days) or ``"crypto"``.
    periods_per_year
        Bars per year, from the bar size and calendar (see `detect_frequency`).
    time_of_day
        Modal ``"HH:MM"`` UTC stamp of daily-or-longer bars; ``None`` for intraday bars.
    """

    bar_seconds: int
    label: str
    calendar: str
    periods_per_year: float
    time_of_day: str | None = None

    def __post_init__(self) -> None:
        if self.calendar not in CALENDARS:
            raise ValueError(f"calendar must be one of {CALENDARS}, got {self.calendar!r}")
        if self.bar_seconds <= 0 or not self.periods_per_year > 0:
            raise ValueError(f"bar_seconds and periods_per_year must be positive: {self}")

    @property
    def intraday(self) -> bool:
        """Whether bars are shorter than a day."""
        return self.bar_seconds < DAY

    @property
    def min_gap_seconds(self) -> float:
        """How close bars may lie: 0.9 bar intraday, 20 h daily (DST stays legal), half a bar."""
        if self.intraday:
            return 0.9 * self.bar_seconds
        return float(DAILY_MIN_GAP) if self.bar_seconds == DAY else 0.5 * self.bar_seconds

    def describe(self) -> str:
        """``"1d equity bars at 00:00 UTC, 252 a year"``."""
        at = f" at {self.time_of_day} UTC" if self.time_of_day else ""
        return f"{self.label} {self.calendar} bars{at}, {self.periods_per_year:g} a year"


def detect_frequency(ts: pl.Series | np.ndarray, calendar: str | None = None) -> BarFrequency:
    """Detect one symbol's bar frequency and calendar from its timestamps.

    Rules (timestamps are UTC; duplicates and order do not matter):

    - Bar size. A median spacing of 0.9 day or more gives daily (< 4 days, so weekends and
      holidays are tolerated), weekly (< 10), monthly (< 45), quarterly (< 120) or yearly
      (< 400 days) bars. Otherwise bars are intraday and their size is the exact median
      spacing of consecutive bars within one UTC date, provided it is under an hour or
      divides a day; any other spacing (e.g. 16 h) is the mark of two daily series stamped
      at different times, read as daily so the consistency check can refuse it.
    - Calendar, unless given. ``crypto`` when Saturday and Sunday both carry bars (at least a
      third of a weekday's even share, so a stray bar or a time-zone shift of weekday bars
      does not count). ``fx`` when intraday bars cover at least 80% of the median weekday,
      or when daily bars spanning at least a year fill at least 98.5% of the dates of their
      weekdays (exchange holidays leave equities near 96.5%; over a shorter span holidays
      cannot be told apart, and the default is the conservative ``equity``). Otherwise,
      and for bars longer than a day, ``equity``.
    - Periods per year. Daily: equity 252, fx 260, crypto 365. Intraday: equity 252 times
      the bars of a regular session, measured as the median bars per UTC date with bars
      (a 6.5 h session stamped hourly gives 7); fx 260 and crypto 365 times 86400 /
      bar_seconds. Weekly 52, monthly 12, quarterly 4, yearly 1, on any calendar.
    - Time of day. The modal ``HH:MM`` of daily-or-longer bars (DST moves some by an hour).

    Parameters
    ----------
    ts
        One symbol's bar timestamps: a polars Date/Datetime series (a time zone is converted
        to UTC) or a numpy datetime64 array (naive UTC).
    calendar
        Use this calendar instead of detecting one.

    Returns
    -------
    BarFrequency

    Raises
    ------
    ValueError
        With fewer than 2 distinct timestamps, bars over a year apart or an unknown calendar.
    """
    return _detect(_micros(ts), calendar)


def align_daily_bars(
    df: pl.DataFrame, frequencies: Mapping[str, BarFrequency] | None = None
) -> pl.DataFrame:
    """Stamp daily-or-longer bars at 00:00 of their UTC date; intraday bars stay as they are.

    Files that stamp the same days at different times then line up on one bar a date (the
    resulting duplicates are the ingest's duplicate policy's). Bars stamped at local midnight
    east of UTC fall on the previous UTC date: convert them first or ingest them unaligned.

    Parameters
    ----------
    df
        Canonical bars (other columns are kept as they are).
    frequencies
        Known frequencies by symbol (e.g. the lake's); other symbols are detected from
        ``df``, and a symbol with a single bar is aligned, as asked.

    Returns
    -------
    pl.DataFrame
        ``df`` with the ``ts`` of its daily-or-longer symbols truncated to the date.
    """
    daily = []
    for symbol, group in df.filter(pl.col("symbol").is_not_null()).group_by("symbol"):
        frequency = (frequencies or {}).get(symbol[0])
        if frequency is None:
            with suppress(ValueError):  # a single bar stays None: aligned, as asked
                frequency = _detect(_micros(group["ts"]), None)
        if frequency is None or not frequency.intraday:
            daily.append(symbol[0])
    aligned = pl.when(pl.col("symbol").is_in(daily)).then(pl.col("ts").dt.truncate("1d"))
    return df.with_columns(aligned.otherwise(pl.col("ts")).alias("ts"))


def check_bar_series(batch: pl.DataFrame, source: str, stored_ts: Mapping[str, np.ndarray],
                     stored: Mapping[str, BarFrequency],
                     calendar: str | None = None) -> dict[str, BarFrequency]:
    """Refuse a batch that cannot be one bar series per symbol with what the lake holds.

    Per symbol, the reference is the lake's frequency, else that of the batch's largest
    ``file`` (or of the whole batch). Refused are bars closer than the reference allows
    (`BarFrequency.min_gap_seconds`) to another bar of the batch or the lake, and a file's
    (or the batch's) new bars whose bar size (when 3 or more form one block with no stored
    bar inside), daily time of day (beyond an hour of DST) or intraday grid offset differs.

    Parameters
    ----------
    batch
        Canonical bars as given, with optional ``file``/``line`` provenance to name rows by
        (else 0-based positions in the frame as given).
    source
        File or label of the batch, named in errors.
    stored_ts, stored
        Per symbol, the lake's distinct times (sorted int64 microseconds) and frequency.
    calendar
        A user-given calendar for the frequencies returned.

    Returns
    -------
    dict of str to BarFrequency
        Each symbol's frequency once the batch is stored (lake and batch bars together; with
        ``calendar``, else the stored one); symbols with under two distinct bars left out.

    Raises
    ------
    DataQualityError
        One failure per symbol and problem: column ``ts``, count, examples, what to do.
    """
    failures, after = [], {}
    if calendar not in (None, *CALENDARS):  # a caller's mistake, not bad data
        raise ValueError(f"calendar must be one of {CALENDARS}, got {calendar!r}")
    frame = batch.with_row_index("_row").filter(
        pl.col("symbol").is_not_null(), pl.col("ts").is_not_null()
    ).with_columns(_us=pl.col("ts").cast(pl.Datetime("us")).to_physical())
    for (symbol,), rows in frame.group_by("symbol", maintain_order=True):
        old, known = stored_ts.get(symbol, np.empty(0, dtype=np.int64)), stored.get(symbol)
        try:
            problems = _problems(rows, old, known)
            merged = np.union1d(old, rows["_us"].to_numpy())
            if merged.size >= 2:
                after[symbol] = _detect(merged, calendar or (known.calendar if known else None))
        except ValueError as error:  # e.g. bars more than a year apart: no frequency to tell
            problems = [(rows.height, str(error))]
        failures += [QualityFailure(source, "ts", count, f"symbol {symbol}: {problem}")
                     for count, problem in problems]
    if failures:
        raise DataQualityError(failures)
    return after


def _problems(rows: pl.DataFrame, old: np.ndarray,
              known: BarFrequency | None) -> list[tuple[int, str]]:
    """Count and text of each problem of one symbol's batch rows next to its stored times."""
    by_file = (rows.partition_by("file", as_dict=True, maintain_order=True)
               if "file" in rows.columns else {(None,): rows})
    parts = sorted(((key[0] or "the batch", np.unique(part["_us"].to_numpy()))
                    for key, part in by_file.items()), key=lambda part: -part[1].size)
    if known is not None:
        reference, name, grid_us = known, "the lake", old
    elif parts[0][1].size >= 2:
        (name, grid_us), reference = parts[0], _detect(parts[0][1], None)
    else:
        return []
    found = _clashes(rows, old, reference)
    for part, us in parts:
        new = np.setdiff1d(us, old, assume_unique=True)
        problem = None if part == name else _differs(new, old, reference, grid_us)
        if problem:
            found.append((new.size, f"{part} {problem[0]}, {name}'s {problem[1]}"))
    return found


def _clashes(rows: pl.DataFrame, old: np.ndarray, reference: BarFrequency) -> list[tuple[int, str]]:
    """Batch bars closer than ``reference`` allows to another bar of the batch or the lake."""
    batch_us = np.unique(rows["_us"].to_numpy())
    merged = np.union1d(old, batch_us)
    from_batch = np.isin(merged, batch_us)
    gap = reference.min_gap_seconds * _US
    if not np.any((np.diff(merged) < gap) & (from_batch[1:] | from_batch[:-1])):
        return []  # the common case, without a loop in Python
    pairs, kept = [], 0
    for i in range(1, merged.size):  # each bar too close to the last bar kept clashes
        if merged[i] - merged[kept] >= gap:
            kept = i
        elif from_batch[i] or from_batch[kept]:
            pairs.append((i, kept) if from_batch[i] else (kept, i))
    if not pairs:  # only bars the lake already held clash (stored before this check)
        return []
    shown = "; ".join(" vs ".join(_where(rows, merged[i], from_batch[i]) for i in pair)
                      for pair in pairs[:3])
    if reference.bar_seconds == DAY:
        allowed, hint = "1d bars allow one a date", ALIGN_HINT
    else:
        allowed = f"{reference.label} bars lie {reference.label} apart"
        hint = "re-stamp one series onto the other's grid, or ingest one file"
    return [(len(pairs), f"{len(pairs)} bar(s) lie within {_duration(gap / _US)} of another "
                         f"bar, but {allowed} ({reference.describe()}): e.g. {shown}; {hint}")]


def _where(rows: pl.DataFrame, us: int, in_batch: bool) -> str:
    """``"b.csv line 12 (2015-01-05 16:00)"``, ``"row 3 (...)"`` or ``"the lake's ..."``."""
    row = rows.filter(pl.col("_us") == us).row(0, named=True) if in_batch else {}
    if row.get("file") is not None and row.get("line") is not None:
        return f"{row['file']} {row_word(row['file'])} {row['line']} ({_stamp(us)})"
    return f"row {row['_row']} ({_stamp(us)})" if in_batch else f"the lake's {_stamp(us)}"


def _differs(new: np.ndarray, old: np.ndarray, reference: BarFrequency,
             grid_us: np.ndarray) -> tuple[str, str] | None:
    """How new bars differ from ``reference`` (their phrase, the reference's), if they do."""
    if not new.size:
        return None
    if new.size >= 3 and not np.any((old > new[0]) & (old < new[-1])):
        seconds, label, _ = _bar_size(new)
        if seconds != reference.bar_seconds:
            return (f"holds {label} bars", f"are {reference.label} bars ({reference.describe()}):"
                    " ingest each frequency under its own symbol")
    if reference.time_of_day is not None:
        hh, mm = map(int, reference.time_of_day.split(":"))
        minute = _modal_phase(new, DAY, 60)
        apart = abs(minute - (60 * hh + mm))
        if min(apart, 1440 - apart) > DST_TOLERANCE_MINUTES:
            return (f"stamps its {reference.label} bars at {minute // 60:02d}:{minute % 60:02d}"
                    " UTC",
                    f"are stamped at {reference.time_of_day} UTC; {ALIGN_HINT}")
    elif reference.intraday:
        grid = gcd(reference.bar_seconds, 3600)  # DST moves bars by whole hours
        offset, expected = _modal_phase(new, grid), _modal_phase(grid_us, grid)
        if offset != expected:
            return (f"puts its {reference.label} bars at {_clock(offset)} past the hour",
                    f"are at {_clock(expected)}; re-stamp one series onto the other's grid")
    return None


def _detect(us: np.ndarray, calendar: str | None) -> BarFrequency:
    """`detect_frequency` on sorted distinct int64 microseconds."""
    if calendar not in (None, *CALENDARS):
        raise ValueError(f"calendar must be one of {CALENDARS}, got {calendar!r}")
    if us.size < 2:
        raise ValueError(f"need at least 2 distinct timestamps to tell a frequency, got {us.size}")
    bar_seconds, label, fixed = _bar_size(us)
    calendar = calendar or _calendar(us, bar_seconds)
    per_day = DAY / bar_seconds  # 1 for daily bars; equities count their session's bars
    if calendar == "equity" and bar_seconds < DAY:
        per_day = float(np.median(np.unique(us // _DAY_US, return_counts=True)[1]))
    periods = fixed or TRADING_DAYS[calendar] * per_day
    minute = _modal_phase(us, DAY, 60)
    time_of_day = f"{minute // 60:02d}:{minute % 60:02d}" if bar_seconds >= DAY else None
    return BarFrequency(bar_seconds, label, calendar, float(periods), time_of_day)


def _bar_size(us: np.ndarray) -> tuple[int, str, float | None]:
    """Bar seconds, label and fixed periods per year (``None``: set by the calendar)."""
    gaps = np.diff(us)
    median = float(np.median(gaps))
    if median < 0.9 * _DAY_US:
        dates = us // _DAY_US
        same_date = gaps[dates[1:] == dates[:-1]]
        step = max(1, round(float(np.median(same_date)) / _US)) if same_date.size else DAY
        if step < 3600 or (step < DAY and DAY % step == 0):
            unit, name = next((u, n) for u, n in _UNITS[1:] if step % u == 0)
            return step, f"{step // unit}{name}", None
        return DAY, "1d", None  # e.g. 00:00 and 16:00 stamps: daily bars from two sources
    for upper_days, label, seconds, periods in _LONGER:
        if median < upper_days * _DAY_US:
            return seconds, label, periods
    raise ValueError(f"bars lie {median / _DAY_US:.0f} days apart on median: longer than yearly")


def _calendar(us: np.ndarray, bar_seconds: int) -> str:
    """The calendar rule of `detect_frequency`."""
    if bar_seconds > DAY:
        return "equity"  # weekly and longer bars say nothing about the days traded
    dates = us // _DAY_US
    weekday = (dates + 3) % 7  # 0 is Monday: 1970-01-01 was a Thursday
    carries = np.bincount(weekday, minlength=7) >= us.size * _CARRIES
    if carries[5] and carries[6]:
        return "crypto"
    if bar_seconds < DAY:
        _, per_date = np.unique(dates[weekday < 5], return_counts=True)
        covered = per_date.size and np.median(per_date) * bar_seconds >= _FX_INTRADAY_COVERAGE * DAY
        return "fx" if covered else "equity"
    if dates[-1] - dates[0] >= _FX_DAILY_SPAN_DAYS:
        span = np.arange(dates[0], dates[-1] + 1)
        if np.unique(dates).size >= _FX_DAILY_COVERAGE * np.count_nonzero(carries[(span + 3) % 7]):
            return "fx"
    return "equity"


def _micros(ts: pl.Series | np.ndarray) -> np.ndarray:
    """Sorted distinct naive-UTC timestamps as int64 microseconds (nulls dropped)."""
    if isinstance(ts, pl.Series):
        if isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is not None:
            ts = ts.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        ts = ts.drop_nulls().cast(pl.Datetime("us")).to_numpy()
    values = np.asarray(ts).astype("datetime64[us]")
    return np.unique(values[~np.isnat(values)].astype(np.int64))


def _modal_phase(us: np.ndarray, period: int, unit: int = 1) -> int:
    """The most frequent position of bars within a ``period`` (seconds), in ``unit`` seconds
    (the earliest on a tie): e.g. the minute of the day with ``(DAY, 60)``."""
    phase = us // (unit * _US) % (period // unit)
    return int(np.argmax(np.bincount(phase, minlength=period // unit)))


def _clock(seconds: int) -> str:
    """``":07"`` (minutes past the hour), ``":07:30"`` with seconds."""
    return f":{seconds // 60:02d}" + (f":{seconds % 60:02d}" if seconds % 60 else "")


def _duration(seconds: float) -> str:
    """``"20h"``, ``"13m30s"``."""
    left, parts = round(seconds), []
    for unit, name in _UNITS:
        if left >= unit:
            parts.append(f"{left // unit}{name}")
            left %= unit
    return "".join(parts) or "0s"


def _stamp(us: int) -> str:
    """``"2015-01-05 16:00"`` (with seconds when there are any)."""
    moment = datetime(1970, 1, 1) + timedelta(microseconds=int(us))
    return moment.strftime("%Y-%m-%d %H:%M" + (":%S" if moment.second else ""))
