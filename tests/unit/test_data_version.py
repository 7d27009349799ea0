"""Maintenance and cold-tier migrations add Delta versions but no data: a run records the data
version, which they leave unchanged, and reading it still works after its files are vacuumed."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from factory.data.cold import migrate_to_cold
from factory.data.lake import Lake
from factory.data.maintenance import maintain
from factory.data.sources import synthetic_bars
from factory.paths import FactoryPaths


def _lake(paths: FactoryPaths) -> Lake:
    return Lake(paths.lake, cold_root=str(paths.home / "cold"))


@pytest.fixture()
def home(tmp_path, monkeypatch) -> FactoryPaths:
    monkeypatch.setenv("FACTORY_TIME_TRAVEL_DAYS", "0")  # vacuum deletes every unused file
    paths = FactoryPaths(tmp_path / "home")
    lake = _lake(paths)
    bars = synthetic_bars(symbols=("AAA", "BBB"), n_bars=400, seed=2, start="2020-01-01")
    lake.ingest_bars(bars.group_by("symbol", maintain_order=True).head(300), "old.csv")
    lake.ingest_bars(bars, "all.csv")
    return paths


def test_maintenance_and_migration_keep_the_data_version_and_its_rows(home):
    lake = _lake(home)
    assert lake.data_version() == lake.version() == 1
    before = lake.read_bars(version=1)
    assert maintain(lake, timedelta(0)).files_compacted > 0
    migrated = migrate_to_cold(home, timedelta(days=200), lake=lake)
    assert migrated.rows_deleted > 0
    maintain(lake, timedelta(0))  # vacuum: version 1's own files are gone now
    assert lake.version() > 1 and lake.data_version() == 1
    assert lake.read_bars(version=1).equals(before)
    assert lake.read_bars().equals(before)


def test_an_ingest_after_maintenance_is_a_new_data_version(home):
    lake = _lake(home)
    maintain(lake, timedelta(0))
    more = synthetic_bars(symbols=("AAA",), n_bars=401, seed=2, start="2020-01-01").tail(1)
    result = lake.ingest_bars(more.with_columns(pl.col("close") * 1.0), "new.csv")
    assert result.rows_added == 1
    assert lake.data_version() == lake.version() == result.version > 2
    assert lake.read_bars(version=1).height == lake.read_bars().height - 1
