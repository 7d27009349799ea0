"""``data.start`` / ``data.end``: a universe whose symbols end at different dates is cut to a
span every symbol covers, so each one reaches the out-of-sample period, and the span is part
of what a configuration is (its id, its cached data, its dataset record)."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from factory.config import ConfigError, load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.data.span import clip_to_span, span_bounds
from factory.data.universe import describe_universe
from factory.grid import expand
from factory.training.datasets import DatasetRef, cache_bars, load_bars
from factory.training.fit import build_panel

SYMBOLS = ("LONG", "SHORT")


@pytest.fixture()
def ragged_lake(tmp_path) -> Lake:
    """LONG: 400 daily bars from 2015-01-01; SHORT: 100 bars from 2015-03-01."""
    lake = Lake(tmp_path / "lake")
    lake.ingest_bars(synthetic_bars(symbols=("LONG",), n_bars=400, seed=1), "long.csv")
    lake.ingest_bars(synthetic_bars(symbols=("SHORT",), n_bars=100, seed=2,
                                    start="2015-03-01"), "short.csv")
    return lake


def _firsts_lasts(bars: pl.DataFrame) -> dict[str, tuple[datetime, datetime]]:
    spans = bars.group_by("symbol").agg(pl.col("ts").min(), pl.col("ts").max().alias("last"))
    return {row[0]: (row[1], row[2]) for row in spans.rows()}


def test_common_bounds_are_the_latest_first_and_earliest_last_bar(ragged_lake):
    bars = ragged_lake.read_bars()
    spans = _firsts_lasts(bars)
    first, last = span_bounds(bars, "common", "common")
    assert first == spans["SHORT"][0] and last == spans["SHORT"][1]
    clipped = _firsts_lasts(clip_to_span(bars, "common", "common"))
    assert clipped["LONG"] == clipped["SHORT"] == spans["SHORT"]


def test_a_date_bound_keeps_that_whole_day(ragged_lake):
    bars = ragged_lake.read_bars()
    clipped = clip_to_span(bars, "2015-03-10", "2015-04-01")
    ts = clipped.filter(pl.col("symbol") == "LONG")["ts"]
    assert (ts.min().date().isoformat(), ts.max().date().isoformat()) == (
        "2015-03-10", "2015-04-01")
    assert ts.len() == 23


def test_a_span_that_empties_a_symbol_names_it(ragged_lake):
    with pytest.raises(ValueError, match="keeps no bar of SHORT"):
        clip_to_span(ragged_lake.read_bars(), None, "2015-02-01")


def test_bad_bounds_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match="data.start is '2015-13-01'"):
        load_config("smoke", data={"start": "2015-13-01"})
    with pytest.raises(ConfigError, match="data.start 2016-01-01 is after data.end"):
        load_config("smoke", data={"start": "2016-01-01", "end": "2015-01-01"})


def test_the_span_is_part_of_a_configs_id_but_leaves_earlier_ids_alone():
    plain = expand(load_config("smoke"), SYMBOLS).specs[0]
    ended = expand(load_config("smoke", data={"end": "common"}), SYMBOLS).specs[0]
    assert "data_end" not in plain.canonical_json()
    assert ended.data_end == "common" and ended.id != plain.id


def test_end_common_brings_every_symbol_into_the_out_of_sample_period(ragged_lake):
    config = load_config("smoke", data={"source": "lake"})
    assert describe_universe(config, ragged_lake).without_oos_bars() == ["SHORT"]
    ended = load_config("smoke", data={"source": "lake", "end": "common"})
    report = describe_universe(ended, ragged_lake)
    assert report.without_oos_bars() == []
    assert "data.end common" in report.lines()[0]


def test_workers_train_on_the_clipped_bars_of_their_own_span(ragged_lake, tmp_path):
    config = load_config("smoke", data={"source": "lake", "end": "common"})
    version = ragged_lake.version()
    whole = DatasetRef.for_lake(tmp_path / "cache", ragged_lake, version, SYMBOLS)
    ref = DatasetRef.for_lake(tmp_path / "cache", ragged_lake, version, SYMBOLS,
                              span=(None, "common"))
    assert whole.bars_path() != ref.bars_path()
    cache_bars(ragged_lake, ref)
    cache_bars(ragged_lake, whole)
    assert load_bars(ref)["ts"].max() == _firsts_lasts(ragged_lake.read_bars())["SHORT"][1]
    assert load_bars(whole).height == 500
    spec = expand(config, SYMBOLS).specs[0]
    with pytest.raises(ValueError, match="the cached bars span None/None"):
        build_panel(spec, whole)
