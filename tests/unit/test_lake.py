"""The bitemporal Delta lake: idempotent ingest, corrections, point-in-time reads, atomicity,
and one consistent, stored bar frequency per symbol."""

import shutil
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from factory.data.frequency import BarFrequency, align_daily_bars, detect_frequency
from factory.data.lake import LAKE_COLUMNS, IngestResult, Lake, LakeTableMissingError
from factory.data.quality import _validator
from factory.data.schema import BAR_COLUMNS, DataQualityError
from factory.data.sources import synthetic_bars
from tests.unit.test_frequency import equity_dates

CORRECTED_TS = datetime(2020, 1, 10)


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synthetic_bars(("AAA", "BBB"), n_bars=60, seed=4, start="2020-01-01")


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


def _close(frame: pl.DataFrame, symbol: str, ts: datetime) -> float:
    return frame.filter(pl.col("symbol") == symbol, pl.col("ts") == ts)["close"].item()


def _correction(bars: pl.DataFrame) -> pl.DataFrame:
    """One AAA bar whose close (and high, to stay consistent) was revised upwards."""
    row = bars.filter(pl.col("symbol") == "AAA", pl.col("ts") == CORRECTED_TS)
    return row.with_columns(close=pl.col("high") + 1.0, high=pl.col("high") + 2.0)


def test_empty_lake_says_how_to_fill_it(lake):
    assert lake.version() is None
    assert lake.symbols() == []
    with pytest.raises(LakeTableMissingError, match="factory ingest"):
        lake.read_bars()


def test_ingest_twice_adds_nothing_the_second_time(lake, bars):
    first = lake.ingest_bars(bars, "synthetic")
    assert first == IngestResult(version=0, rows_added=120, rows_unchanged=0, rows_corrected=0)
    again = lake.ingest_bars(bars.reverse(), "synthetic")
    assert again == IngestResult(version=0, rows_added=0, rows_unchanged=120, rows_corrected=0)
    assert lake.version() == 0
    read = lake.read_bars()
    assert read.columns == list(BAR_COLUMNS)
    assert read.equals(bars)  # no duplicates, same values, sorted by (symbol, ts)
    assert lake.symbols() == ["AAA", "BBB"]
    stored = lake.read_table("bars")
    assert stored.height == 120 and stored["knowledge_ts"].n_unique() == 1
    assert stored["source"].unique().to_list() == ["synthetic"]


def test_new_bars_are_appended_and_known_ones_skipped(lake, bars):
    lake.ingest_bars(bars.filter(pl.col("ts") < datetime(2020, 2, 1)), "early")
    result = lake.ingest_bars(bars, "full")
    assert result.version == 1
    assert (result.rows_added, result.rows_corrected) == (2 * 29, 0)
    assert result.rows_unchanged == 2 * 31
    assert lake.read_bars(["BBB"]).equals(bars.filter(pl.col("symbol") == "BBB"))


def test_correction_is_bitemporal(lake, bars):
    lake.ingest_bars(bars, "vendor")
    original = _close(bars, "AAA", CORRECTED_TS)
    before_correction = datetime.now(UTC)
    result = lake.ingest_bars(_correction(bars), "vendor-fix")
    assert result == IngestResult(version=1, rows_added=1, rows_unchanged=0, rows_corrected=1)

    latest = lake.read_bars()
    assert latest.height == bars.height  # the correction replaces, it does not duplicate
    assert _close(latest, "AAA", CORRECTED_TS) == _close(_correction(bars), "AAA", CORRECTED_TS)
    assert _close(latest, "AAA", CORRECTED_TS) != original
    assert _close(latest, "AAA", CORRECTED_TS + timedelta(days=1)) == _close(
        bars, "AAA", CORRECTED_TS + timedelta(days=1)
    )
    assert _close(lake.read_bars(as_of=before_correction), "AAA", CORRECTED_TS) == original
    naive_utc = before_correction.replace(tzinfo=None)
    assert _close(lake.read_bars(["AAA"], as_of=naive_utc), "AAA", CORRECTED_TS) == original
    assert _close(lake.read_bars(version=0), "AAA", CORRECTED_TS) == original
    assert lake.read_bars(version=0).equals(bars)

    stored = lake.read_table("bars").filter(pl.col("ts") == CORRECTED_TS, pl.col("symbol") == "AAA")
    assert stored.sort("knowledge_ts")["source"].to_list() == ["vendor", "vendor-fix"]


def test_corrupted_batch_is_rejected_before_any_write(lake, bars):
    lake.ingest_bars(bars, "good")
    corrupt = pl.concat([_correction(bars), bars.tail(3)]).with_columns(
        low=pl.when(pl.col("symbol") == "BBB").then(pl.col("high") + 1).otherwise(pl.col("low"))
    )
    with pytest.raises(DataQualityError, match="bad.csv: column 'high': 3 rows fail 'high >= low'"):
        lake.ingest_bars(corrupt, "bad.csv")
    assert lake.version() == 0
    assert lake.read_bars().equals(bars)  # the valid correction in the batch was not applied


def test_generic_tables_append_and_read(lake):
    returns = pl.DataFrame(
        {"run_id": ["a", "a"], "ts": [datetime(2021, 1, 1)] * 2, "ret": [0.1, 0.0]}
    )
    assert lake.version("strategy_returns") is None
    assert lake.append_table("strategy_returns", returns) == 0
    assert lake.append_table("strategy_returns", returns) == 1
    assert lake.read_table("strategy_returns").height == 4
    assert lake.read_table("strategy_returns", version=0).equals(returns)
    assert lake.version() is None  # the bars table is untouched


def _daily(dates: pl.Series, file: str, *, hours: int = 0, scale: float = 1.0) -> pl.DataFrame:
    """One symbol's daily bars on ``dates`` at ``hours`` UTC, as read from CSV ``file``."""
    prices = ["open", "high", "low", "close"]
    bars = synthetic_bars(("SPX",), n_bars=dates.len(), seed=7)
    return bars.with_columns(
        pl.col(prices) * scale, ts=dates.dt.offset_by(f"{hours}h"), file=pl.lit(file),
        line=pl.int_range(pl.len()) + 2,
    )


@pytest.fixture(scope="module")
def stitch() -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The user's bug: a.csv stamped 00:00 and b.csv 16:00 at another price base, overlapping."""
    dates = equity_dates(date(2012, 1, 1), date(2017, 12, 31))
    a = _daily(dates.filter(dates < datetime(2016, 1, 1)), "a.csv")
    b = _daily(dates.slice(a.height - 661), "b.csv", hours=16, scale=1.5)  # 661 dates in both
    return a, b, 661


def test_daily_files_stamped_00_and_16_are_refused_naming_the_lines(lake, stitch):
    a, b, overlap = stitch
    lake.ingest_bars(a, "a.csv")
    with pytest.raises(DataQualityError) as caught:
        lake.ingest_bars(b, "b.csv")
    error = caught.value
    assert (error.source, error.column, error.rows) == ("b.csv", "ts", overlap)
    assert "symbol SPX: 661 bar(s) lie within 20h" in str(error)
    assert "b.csv line 2 (2013-05-16 16:00) vs the lake's 2013-05-16 00:00" in str(error)
    assert "--align-daily-bars" in str(error)
    assert lake.version() == 0 and lake.version("symbols") == 0  # nothing written
    assert lake.read_bars().height == a.height


def test_aligned_daily_bars_ingest_as_one_bar_per_date(lake, stitch):
    a, b, overlap = stitch
    lake.ingest_bars(a, "a.csv")
    result = lake.ingest_bars(align_daily_bars(b, lake.bar_frequencies()), "b.csv")
    assert (result.rows_corrected, result.rows_added) == (overlap, b.height)
    stored = lake.read_bars(["SPX"])
    assert stored.columns == list(BAR_COLUMNS)  # provenance is never stored
    assert stored["ts"].dt.hour().unique().to_list() == [0]
    assert stored["ts"].dt.date().is_unique().all()
    assert stored.height == a.height + b.height - overlap
    assert lake.bar_frequencies()["SPX"] == BarFrequency(86_400, "1d", "equity", 252.0, "00:00")


def test_hourly_bars_onto_daily_bars_are_refused_naming_both(lake):
    lake.ingest_bars(synthetic_bars(("X",), n_bars=100, start="2020-01-01"), "daily.csv")
    later = synthetic_bars(("X",), n_bars=48, start="2020-06-01", freq="1h")
    with pytest.raises(DataQualityError, match=r"the batch holds 1h bars, the lake's are 1d bars"):
        lake.ingest_bars(later, "hourly.csv")
    overlapping = synthetic_bars(("X",), n_bars=48, start="2020-02-01", freq="1h")
    with pytest.raises(DataQualityError, match=r"46 bar\(s\) lie within 20h .*\(1d crypto bars"):
        lake.ingest_bars(overlapping, "hourly.csv")
    assert lake.version() == 0


def test_fifteen_minute_bars_off_the_lakes_grid_are_refused(lake):
    lake.ingest_bars(synthetic_bars(("BTC",), n_bars=400, freq="15m"), "on-the-hour.csv")
    offset = synthetic_bars(("BTC",), n_bars=400, seed=1, freq="15m", start="2015-01-02 00:07")
    with pytest.raises(DataQualityError) as caught:
        lake.ingest_bars(offset, "offset.csv")
    message = str(caught.value)
    assert "within 13m30s of another bar, but 15m bars lie 15m apart" in message
    assert "puts its 15m bars at :07 past the hour, the lake's are at :00" in message
    assert "row 0 (2015-01-02 00:07) vs the lake's 2015-01-02 00:00" in message
    assert lake.version() == 0


def test_dst_shifted_daily_closes_ingest_fine(lake):
    local = equity_dates(date(2019, 1, 1), date(2020, 12, 31)).dt.offset_by("16h")
    closes = local.dt.replace_time_zone("America/New_York")  # 21:00 UTC in winter, 20:00 in summer
    bars = synthetic_bars(("SPY",), n_bars=closes.len(), seed=3).with_columns(ts=closes)
    winter = bars.filter(pl.col("ts").dt.month().is_in([1, 2, 11, 12]))
    lake.ingest_bars(bars.filter(pl.col("ts").dt.year() == 2019), "2019.csv")
    lake.ingest_bars(winter.filter(pl.col("ts").dt.year() == 2020), "winter-2020.csv")  # 21:00
    result = lake.ingest_bars(bars, "all.csv")
    assert result.rows_added == bars.height - lake.read_table("bars", version=1).height
    assert lake.read_bars().height == bars.height
    assert lake.bar_frequencies()["SPY"] == BarFrequency(86_400, "1d", "equity", 252.0, "20:00")


def test_reingesting_unchanged_bars_never_runs_great_expectations(lake, bars):
    lake.ingest_bars(bars, "first")
    calls = _validator.cache_info()
    assert lake.ingest_bars(bars, "again").rows_added == 0
    assert _validator.cache_info() == calls  # GX was not even looked up
    lake.ingest_bars(_correction(bars), "fix")
    assert _validator.cache_info().hits + _validator.cache_info().misses > calls.hits + calls.misses


def test_stored_frequency_round_trips_and_a_given_calendar_wins(lake, bars):
    lake.ingest_bars(bars, "synthetic")
    every_day = detect_frequency(bars.filter(pl.col("symbol") == "AAA")["ts"])
    assert every_day.calendar == "crypto"
    assert lake.bar_frequencies() == {"AAA": every_day, "BBB": every_day}
    assert lake.read_table("symbols").height == 2
    lake.ingest_bars(bars, "synthetic")
    assert lake.read_table("symbols").height == 2  # unchanged: no new rows
    result = lake.ingest_bars(bars.filter(pl.col("symbol") == "AAA"), "x", calendar="fx")
    assert result.version == 0  # no bar changed, only the calendar
    assert lake.bar_frequencies(["AAA"])["AAA"].periods_per_year == 260
    assert lake.bar_frequencies(["BBB"])["BBB"].periods_per_year == 365
    lake.ingest_bars(bars.filter(pl.col("symbol") == "AAA").tail(1), "one bar")
    assert lake.bar_frequencies(["AAA"])["AAA"].calendar == "fx"  # the stored calendar is kept
    with pytest.raises(ValueError, match="calendar"):
        lake.ingest_bars(bars, "x", calendar="stocks")


def test_frequency_of_a_lake_written_before_the_symbols_table_is_detected(lake, bars):
    lake.ingest_bars(bars, "synthetic")
    shutil.rmtree(lake.uri("symbols"))
    assert lake.bar_frequencies(["AAA"])["AAA"].periods_per_year == 365
    lake.ingest_bars(bars.tail(1), "again")
    assert lake.read_table("symbols")["symbol"].to_list() == ["BBB"]
    assert Lake(lake.root).bar_frequencies() == {
        s: detect_frequency(bars.filter(pl.col("symbol") == s)["ts"]) for s in ("AAA", "BBB")}


def test_frequencies_as_of_a_bars_version(lake):
    daily = synthetic_bars(("AAA",), n_bars=40)
    lake.ingest_bars(daily.head(20), "first")
    lake.ingest_bars(daily.tail(20), "second", calendar="equity")
    assert lake.bar_frequencies(version=0)["AAA"].calendar == "crypto"
    assert lake.bar_frequencies(version=1)["AAA"].calendar == "equity"
    assert lake.bar_frequencies(["ZZZ"]) == {}
    assert Lake(lake.root + "-empty").bar_frequencies() == {}


def test_one_new_daily_bar_at_another_time_of_day_is_refused(lake, bars):
    lake.ingest_bars(bars.head(59), "vendor")  # AAA's 59 first bars, at 00:00
    late = bars.slice(59, 1).with_columns(pl.col("ts").dt.offset_by("16h"))
    with pytest.raises(DataQualityError, match="the batch stamps its 1d bars at 16:00 UTC, "
                                               "the lake's are stamped at 00:00 UTC"):
        lake.ingest_bars(late, "late.csv")
    assert lake.ingest_bars(bars.slice(59, 1), "on-time.csv").rows_added == 1


def test_a_lake_holding_a_stitch_from_before_the_check_still_takes_new_bars(lake, bars):
    old = bars.filter(pl.col("symbol") == "AAA").head(30)
    stitched = pl.concat([old, old.with_columns(pl.col("ts").dt.offset_by("16h"))])
    lake.append_table("bars", stitched.with_columns(
        knowledge_ts=pl.lit(datetime(2020, 1, 1)), source=pl.lit("legacy")).select(LAKE_COLUMNS))
    assert lake.bar_frequencies()["AAA"].periods_per_year == 365  # by the day, not 730
    result = lake.ingest_bars(bars.filter(pl.col("symbol") == "AAA").tail(30), "new")
    assert result.rows_added == 30
