"""Bar frequency and calendar detection: the documented rules, on the series they are for."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl
import pytest

from factory.data.frequency import (
    DAILY_MIN_GAP,
    BarFrequency,
    align_daily_bars,
    check_bar_series,
    detect_frequency,
)
from factory.data.schema import DataQualityError
from factory.data.sources import synthetic_bars


def equity_dates(start: date = date(2014, 1, 1), end: date = date(2016, 12, 31)) -> pl.Series:
    """Weekdays minus every 28th one (about 9 exchange holidays a year), as datetimes."""
    days = pl.date_range(start, end, "1d", eager=True)
    weekdays = days.filter(days.dt.weekday() <= 5)
    keep = np.arange(weekdays.len()) % 28 != 5
    return weekdays.filter(pl.Series(keep)).cast(pl.Datetime("us"))


def fx_hours(start: datetime, end: datetime) -> pl.Series:
    """Hourly FX bars, 24x5: Sunday 22:00 to Friday 22:00 UTC."""
    hours = pl.datetime_range(start, end, "1h", eager=True)
    day, hour = hours.dt.weekday(), hours.dt.hour()
    closed = (day == 6) | ((day == 7) & (hour < 22)) | ((day == 5) & (hour >= 22))
    return hours.filter(~closed)


def test_daily_equities_with_holidays_give_252():
    frequency = detect_frequency(equity_dates())
    assert frequency == BarFrequency(86_400, "1d", "equity", 252.0, "00:00")


def test_daily_crypto_every_day_gives_365():
    every_day = np.arange("2020-01-01", "2021-01-01", dtype="datetime64[D]")
    assert detect_frequency(every_day) == BarFrequency(86_400, "1d", "crypto", 365.0, "00:00")


def test_daily_fx_fills_every_weekday_of_a_year_and_gives_260():
    days = pl.date_range(date(2018, 1, 1), date(2019, 12, 31), "1d", eager=True)
    weekdays = days.filter(days.dt.weekday() <= 5)
    assert detect_frequency(weekdays).calendar == "fx"
    assert detect_frequency(weekdays).periods_per_year == 260
    short = weekdays.filter(weekdays < date(2018, 4, 1))  # under a year: holidays unknowable
    assert detect_frequency(short).calendar == "equity"


def test_fifteen_minute_crypto_gives_365_times_96():
    ts = pl.datetime_range(datetime(2021, 1, 1), datetime(2021, 3, 1), "15m", eager=True)
    frequency = detect_frequency(ts)
    assert (frequency.label, frequency.calendar) == ("15m", "crypto")
    assert frequency.periods_per_year == 365 * 96
    assert frequency.time_of_day is None


def test_hourly_fx_24x5_gives_260_times_24():
    frequency = detect_frequency(fx_hours(datetime(2021, 1, 3, 22), datetime(2021, 6, 30)))
    assert (frequency.bar_seconds, frequency.label, frequency.calendar) == (3600, "1h", "fx")
    assert frequency.periods_per_year == 260 * 24


def test_hourly_equities_count_the_bars_of_a_session():
    # 09:30..15:30 New York, stamped hourly: 7 bars for a 6.5 h session, in UTC across DST.
    local = pl.datetime_range(datetime(2021, 1, 4, 9, 30), datetime(2021, 12, 31, 16), "1h",
                              eager=True, time_zone="America/New_York")
    session = local.filter((local.dt.weekday() <= 5) & local.dt.hour().is_between(9, 15))
    frequency = detect_frequency(session)  # a zoned series is read in UTC
    assert (frequency.label, frequency.calendar) == ("1h", "equity")
    assert frequency.periods_per_year == 252 * 7


def test_weekly_and_monthly_bars():
    weekly = np.arange("2015-01-05", "2021-01-01", 7, dtype="datetime64[D]")
    assert detect_frequency(weekly).periods_per_year == 52
    assert detect_frequency(weekly).label == "1w"
    monthly = pl.date_range(date(2010, 1, 31), date(2015, 1, 1), "1mo", eager=True)
    assert (detect_frequency(monthly).label, detect_frequency(monthly).periods_per_year) == (
        "1mo", 12)


def test_a_given_calendar_overrides_detection():
    every_day = np.arange("2020-01-01", "2021-01-01", dtype="datetime64[D]")
    assert detect_frequency(every_day, calendar="equity").periods_per_year == 252
    with pytest.raises(ValueError, match="calendar"):
        detect_frequency(every_day, calendar="stocks")
    with pytest.raises(ValueError, match="at least 2"):
        detect_frequency(every_day[:1])


def test_two_daily_stamps_a_date_read_as_daily_not_as_intraday():
    dates = equity_dates()
    stitched = pl.concat([dates, dates.dt.offset_by("16h")])
    assert detect_frequency(stitched).label == "1d"  # 16 h apart: no bar size divides a day


def test_daily_time_of_day_is_the_modal_utc_stamp_and_dst_shifts_stay_daily():
    closes = equity_dates().dt.offset_by("16h").dt.replace_time_zone("America/New_York")
    frequency = detect_frequency(closes)
    assert (frequency.label, frequency.time_of_day) == ("1d", "20:00")  # EDT outlasts EST
    assert frequency.min_gap_seconds == DAILY_MIN_GAP < 23 * 3600


def test_align_daily_bars_stamps_dates_and_leaves_intraday_bars():
    daily = synthetic_bars(("D",), n_bars=30).with_columns(pl.col("ts").dt.offset_by("16h"))
    hourly = synthetic_bars(("H",), n_bars=30, freq="1h").with_columns(
        pl.col("ts").dt.offset_by("7m"))
    aligned = align_daily_bars(pl.concat([daily, hourly]))
    assert aligned.filter(pl.col("symbol") == "D")["ts"].dt.hour().unique().to_list() == [0]
    assert aligned.filter(pl.col("symbol") == "H")["ts"].equals(hourly["ts"])
    assert aligned.drop("ts").equals(pl.concat([daily, hourly]).drop("ts"))


def test_one_batch_of_two_files_stamped_apart_is_refused_with_their_lines():
    dates = equity_dates()
    a = synthetic_bars(n_bars=dates.len(), seed=1).with_columns(ts=dates, file=pl.lit("a.csv"))
    b = a.with_columns(pl.col("ts").dt.offset_by("16h"), file=pl.lit("b.parquet"))
    batch = pl.concat([a, b]).with_columns(line=pl.int_range(pl.len()).over("file") + 2)
    with pytest.raises(DataQualityError) as caught:
        check_bar_series(batch, "a.csv, b.parquet", {}, {})
    error = caught.value
    assert (error.column, error.rows) == ("ts", dates.len())
    assert "b.parquet row 2 (2014-01-01 16:00) vs a.csv line 2 (2014-01-01 00:00)" in str(error)
    assert "symbol SYN" in str(error) and "--align-daily-bars" in str(error)
    assert check_bar_series(a, "a.csv", {}, {})["SYN"].label == "1d"
