"""Sentiment and on-chain tables: read like bar files, stored bitemporally, refused whole."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from factory.data.ingest import IngestOptions, ingest_sources
from factory.data.lake import Lake
from factory.data.schema import DataQualityError
from factory.data.side_tables import (
    SIDE_SCHEMAS,
    ingest_side_table,
    read_side_file,
    read_side_table,
)
from factory.data.sources import ReadOptions
from factory.paths import FactoryPaths

SENTIMENT = """symbol,date,score,count
AAA,2021-03-01 15:00,0.5,3
AAA,2021-03-02 15:00,-0.25,
BBB,2021-03-01 15:00,0.1,1
"""


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


def _file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _ingest(lake: Lake, path: Path, kind: str = "sentiment"):
    return ingest_side_table(lake, read_side_file(path, kind), kind, str(path))


def test_new_rows_are_stored_and_an_unchanged_reingest_adds_nothing(lake, tmp_path):
    path = _file(tmp_path, "news.csv", SENTIMENT)
    first = _ingest(lake, path)
    assert (first.version, first.rows_added, first.rows_unchanged) == (0, 3, 0)
    again = _ingest(lake, path)
    assert (again.version, again.rows_added, again.rows_unchanged) == (0, 0, 3)
    stored = lake.read_table("sentiment")
    assert stored.height == 3
    assert {"knowledge_ts", "source"} <= set(stored.columns)
    table = read_side_table(lake, "sentiment", ["AAA"])
    assert table.columns == ["symbol", "ts", "score", "count"]
    assert table["score"].to_list() == [0.5, -0.25]
    assert table["count"].to_list() == [3.0, None]
    assert table["ts"].to_list() == [datetime(2021, 3, 1, 15), datetime(2021, 3, 2, 15)]


def test_a_correction_adds_a_row_and_the_latest_knowledge_wins(lake, tmp_path):
    _ingest(lake, _file(tmp_path, "news.csv", SENTIMENT))
    before = lake.read_table("sentiment")["knowledge_ts"].max()
    corrected = SENTIMENT.replace("AAA,2021-03-02 15:00,-0.25,", "AAA,2021-03-02 15:00,-0.5,7")
    result = _ingest(lake, _file(tmp_path, "fixed.csv", corrected))
    assert (result.version, result.rows_added, result.rows_corrected) == (1, 1, 1)
    assert lake.read_table("sentiment").height == 4
    latest = read_side_table(lake, "sentiment", ["AAA"])
    assert latest.row(1) == ("AAA", datetime(2021, 3, 2, 15), -0.5, 7.0)
    as_known = read_side_table(lake, "sentiment", ["AAA"], known_by=before)
    assert as_known.row(1) == ("AAA", datetime(2021, 3, 2, 15), -0.25, None)
    assert read_side_table(lake, "sentiment", ["AAA"], version=0).equals(as_known)


@pytest.mark.parametrize(("line", "column", "where", "rule"), [
    ("AAA,2021-03-03 15:00,2.0,1", "score", "line 5", "score in [-1, 1]"),
    ("AAA,2021-03-03 15:00,0.2,-4", "count", "line 5", "count >= 0"),
    ("AAA,not a time,0.2,4", "date", "line 5", "time"),
    ("AAA,2021-03-03 15:00,,4", "score", "line 5", "score is not null"),
])
def test_a_bad_file_is_refused_whole_naming_file_column_and_line(lake, tmp_path, line, column,
                                                                 where, rule):
    _ingest(lake, _file(tmp_path, "news.csv", SENTIMENT))
    bad = _file(tmp_path, "bad.csv", SENTIMENT + line + "\nBBB,2021-03-09 15:00,0.3,2\n")
    with pytest.raises(DataQualityError) as caught:
        _ingest(lake, bad)
    message = str(caught.value)
    assert "bad.csv" in message and f"column '{column}'" in message, message
    assert where in message and rule in message, message
    assert lake.version("sentiment") == 0
    assert lake.read_table("sentiment").height == 3


def test_a_missing_column_is_named_with_the_required_ones(lake, tmp_path):
    bad = _file(tmp_path, "bad.csv", "symbol,ts,count\nAAA,2021-03-01,3\n")
    with pytest.raises(DataQualityError) as caught:
        _ingest(lake, bad)
    assert caught.value.column == "score" and "bad.csv" in str(caught.value)
    assert "required: symbol, ts, score" in str(caught.value)
    assert lake.version("sentiment") is None


def test_onchain_rows_take_optional_flows_and_refuse_negative_counts(lake, tmp_path):
    good = _file(tmp_path, "chain.csv", "symbol,ts,active_addresses,transaction_count,"
                 "exchange_inflow\nBTC,2021-01-01,100,200,5\nBTC,2021-01-02,110,210,\n")
    assert _ingest(lake, good, "onchain").rows_added == 2
    table = read_side_table(lake, "onchain")
    assert table.columns == list(SIDE_SCHEMAS["onchain"].columns)
    assert table["exchange_inflow"].to_list() == [5.0, None]
    assert table["exchange_outflow"].null_count() == 2
    bad = _file(tmp_path, "bad.csv", "symbol,ts,active_addresses,transaction_count\n"
                "BTC,2021-01-03,-1,220\n")
    with pytest.raises(DataQualityError, match=r"active_addresses >= 0.*line 2"):
        _ingest(lake, bad, "onchain")
    assert lake.version("onchain") == 0


def test_a_single_asset_file_takes_its_symbol_from_the_options(lake, tmp_path):
    path = _file(tmp_path, "btc_sentiment.csv", "timestamp,score\n2021-01-01T12:00:00Z,0.3\n")
    rows = read_side_file(path, "sentiment", ReadOptions(symbol="BTC-USD"))
    assert rows.select("symbol", "ts", "score").row(0) == ("BTC-USD", datetime(2021, 1, 1, 12),
                                                           0.3)


def test_reading_a_table_never_written_gives_no_rows(lake):
    table = read_side_table(lake, "sentiment", ["AAA"])
    assert table.is_empty() and table.columns == ["symbol", "ts", "score", "count"]


def test_ingest_sources_writes_a_side_table_and_refuses_packaged_names(tmp_path):
    paths = FactoryPaths(tmp_path)
    path = _file(tmp_path, "news.csv", SENTIMENT)
    report = ingest_sources(paths, [str(path)], IngestOptions(kind="sentiment"))
    assert report.result.rows_added == 3
    assert Lake(paths.lake).version("bars") is None
    with pytest.raises(ValueError, match="packaged data set of bars"):
        ingest_sources(paths, ["demo"], IngestOptions(kind="onchain"))
    with pytest.raises(ValueError, match="--hold-back: for bars only"):
        IngestOptions(kind="sentiment", hold_back=2)
