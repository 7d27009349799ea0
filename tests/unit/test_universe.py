"""Which symbols a run trains on, the error when the lake lacks them, and the one bar
frequency they must share."""

from __future__ import annotations

import pytest

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.data.universe import (
    MissingSymbolsError,
    MixedFrequencyError,
    describe_universe,
    resolve_symbols,
)
from factory.training.datasets import DatasetRef


def test_demo_profile_on_an_empty_lake_says_to_ingest_the_demo(tmp_path):
    with pytest.raises(MissingSymbolsError, match="factory ingest --source demo --source bokeh"):
        resolve_symbols(load_config("demo"), Lake(tmp_path))


def test_lake_source_takes_every_symbol_in_the_lake(tmp_path):
    lake = Lake(tmp_path)
    lake.ingest_bars(synthetic_bars(symbols=("B", "A"), n_bars=30, seed=1), "syn")
    assert resolve_symbols(load_config("smoke"), lake) == ("A", "B")


def test_a_universe_mixing_bar_sizes_is_refused_listing_each_symbol(tmp_path):
    lake = Lake(tmp_path)
    lake.ingest_bars(synthetic_bars(symbols=("DAILY",), n_bars=60, seed=1), "d.csv")
    lake.ingest_bars(synthetic_bars(symbols=("HOURLY",), n_bars=200, freq="1h"), "h.csv")
    with pytest.raises(MixedFrequencyError) as caught:
        resolve_symbols(load_config("smoke"), lake)
    message = str(caught.value)
    assert "DAILY -> 1d crypto bars at 00:00 UTC, 365 a year" in message
    assert "HOURLY -> 1h crypto bars, 8760 a year" in message
    with pytest.raises(MixedFrequencyError):
        DatasetRef.for_lake(tmp_path / "cache", lake, lake.version(), ("DAILY", "HOURLY"))


def test_a_universe_mixing_calendars_is_refused(tmp_path):
    lake = Lake(tmp_path)
    lake.ingest_bars(synthetic_bars(symbols=("BTC",), n_bars=60, seed=1), "btc.csv")
    lake.ingest_bars(synthetic_bars(symbols=("SPX",), n_bars=60), "spx.csv", calendar="equity")
    with pytest.raises(MixedFrequencyError, match="BTC -> 1d crypto .*SPX -> 1d equity"):
        resolve_symbols(load_config("smoke"), lake)


def test_dataset_ref_carries_the_stored_frequency(tmp_path):
    lake = Lake(tmp_path)
    lake.ingest_bars(synthetic_bars(symbols=("B", "A"), n_bars=30, seed=1), "syn")
    ref = DatasetRef.for_lake(tmp_path / "cache", lake, lake.version(), ("A", "B"))
    assert (ref.periods_per_year, ref.bar_frequency, ref.symbols) == (365.0, "1d", ("A", "B"))
    with pytest.raises(ValueError, match="periods_per_year"):
        DatasetRef(tmp_path, 0, ("A",), 0.0, "1d")


def test_the_run_report_names_symbols_that_end_before_the_out_of_sample_period(tmp_path):
    lake = Lake(tmp_path)
    lake.ingest_bars(synthetic_bars(symbols=("LONG",), n_bars=400, seed=1), "long.csv")
    lake.ingest_bars(synthetic_bars(symbols=("SHORT",), n_bars=100, seed=2), "short.csv")
    report = describe_universe(load_config("smoke"), lake)
    assert report.symbols == ("LONG", "SHORT")
    assert report.without_oos_bars() == ["SHORT"]
    text = "\n".join(report.lines())
    assert text.startswith("universe: 2 symbol(s) from lake v")
    assert "1d crypto bars" in text and "SHORT: 100 bars" in text
    assert "SHORT end(s) before the out-of-sample period" in text


def test_a_universe_of_equal_spans_has_no_warning(tmp_path):
    lake = Lake(tmp_path)
    lake.ingest_bars(synthetic_bars(symbols=("A", "B"), n_bars=200, seed=1), "ab.csv")
    report = describe_universe(load_config("smoke"), lake)
    assert report.without_oos_bars() == []
    assert not any(line.startswith("warning") for line in report.lines())
