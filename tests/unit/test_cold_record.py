"""Once bars moved to the cold tier, every later reader of the lake reads through it: the lake
records where, and refuses a configuration that points elsewhere."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from factory.data.cold import migrate_to_cold
from factory.data.cold_record import ColdTierMismatchError
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.home import backup_home
from factory.paths import FactoryPaths


def test_a_lake_remembers_its_cold_tier(tmp_path):
    paths = FactoryPaths(tmp_path / "home")
    lake = Lake(paths.lake, cold_root=str(tmp_path / "cold"))
    lake.ingest_bars(synthetic_bars(symbols=("AAA",), n_bars=500, seed=1, start="2020-01-01"),
                     "a.csv")
    before = lake.read_bars()
    assert migrate_to_cold(paths, timedelta(days=365), lake=lake).rows_deleted > 0
    assert lake.read_table("bars").height < before.height  # the warm table alone misses some
    later = Lake(paths.lake)  # no cold root given: the recorded one is read
    assert later.cold_root == str(tmp_path / "cold")
    assert later.read_bars().equals(before)
    with pytest.raises(ColdTierMismatchError, match="archived bars to"):
        Lake(paths.lake, cold_root=str(tmp_path / "elsewhere"))


def test_a_backup_stands_alone_with_its_own_copy_of_a_local_cold_tier(tmp_path):
    paths = FactoryPaths(tmp_path / "home")
    lake = Lake(paths.lake, cold_root=str(tmp_path / "archive"))
    lake.ingest_bars(synthetic_bars(symbols=("AAA",), n_bars=500, seed=1, start="2020-01-01"),
                     "a.csv")
    migrate_to_cold(paths, timedelta(days=365), lake=lake)
    before = lake.read_bars()
    copy = FactoryPaths(backup_home(paths, tmp_path / "copy"))
    shutil.rmtree(tmp_path / "archive")  # the original's archive is gone; the copy's is not
    copied = Lake(copy.lake)
    assert copied.cold_root == str(copy.home / "data" / "cold")
    assert copied.read_bars().equals(before)
