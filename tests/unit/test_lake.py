"""The bitemporal Delta lake: idempotent ingest, corrections, point-in-time reads, atomicity."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from factory.data.lake import IngestResult, Lake, LakeTableMissingError
from factory.data.schema import BAR_COLUMNS, DataQualityError
from factory.data.sources import synthetic_bars

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
