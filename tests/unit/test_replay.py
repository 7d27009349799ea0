"""The replay feed: held-back bars reach a real Delta lake exactly once, in order, at the pace
asked for, and a release killed between the lake commit and the cursor neither repeats nor
skips bars."""

from __future__ import annotations

import json

import polars as pl
import pytest

from factory.data.lake import Lake
from factory.data.replay import (
    CURSOR,
    HELD_BACK,
    NoHeldBackBarsError,
    ReleaseResult,
    hold_back,
    release,
    remaining,
)
from factory.data.sources import synthetic_bars


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synthetic_bars(("AAA", "BBB"), n_bars=40, seed=4, start="2020-01-01")


@pytest.fixture
def replay(tmp_path, bars) -> tuple[Lake, pl.DataFrame]:
    """A lake holding all but the last 10 timestamps, which wait in ``tmp_path/replay``."""
    lake = Lake(tmp_path / "lake")
    lake.ingest_bars(hold_back(tmp_path / "replay", bars, 10), "synthetic")
    return lake, bars["ts"].unique().sort()[-10:]


def _stored_once(lake: Lake, bars: pl.DataFrame) -> None:
    """The lake holds every bar once, as ingesting them all directly would."""
    assert lake.read_table("bars").height == bars.height  # no duplicate, no correction
    assert lake.read_bars().equals(bars)


def test_released_in_steps_the_lake_equals_one_direct_ingest(tmp_path, replay, bars):
    lake, times = replay
    assert lake.read_bars().height == 2 * 30 and remaining(tmp_path / "replay", lake) == 10
    results = [release(tmp_path / "replay", lake, n) for n in (3, 3, 3, 1)]
    assert [r.released_bars for r in results] == [3, 3, 3, 1]
    assert [r.remaining for r in results] == [7, 4, 1, 0]
    assert [r.through for r in results] == [times[2], times[5], times[8], times[9]]
    assert [r.lake_version for r in results] == [1, 2, 3, 4]
    _stored_once(lake, bars)
    direct = Lake(tmp_path / "direct")
    direct.ingest_bars(bars, "synthetic")
    assert lake.read_bars().equals(direct.read_bars())
    assert lake.read_table("bars").filter(pl.col("source") == "replay").height == 2 * 10
    cursor = json.loads((tmp_path / "replay" / CURSOR).read_text())
    assert cursor["remaining"] == 0 and cursor["through"] == times[9].isoformat()
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == [CURSOR, HELD_BACK]


def test_nothing_left_releases_nothing_and_commits_nothing(tmp_path, replay):
    lake, times = replay
    release(tmp_path / "replay", lake, 100)
    version = lake.version()
    again = release(tmp_path / "replay", lake, 5)
    assert again == ReleaseResult(released_bars=0, through=times[-1], remaining=0,
                                  lake_version=version)
    assert lake.version() == version


def test_a_release_killed_before_its_cursor_neither_repeats_nor_skips(tmp_path, replay, bars):
    lake, times = replay
    folder = tmp_path / "replay"
    release(folder, lake, 2)
    # The lake committed the next 2 timestamps, then the process died: the cursor still
    # says 2 were released.
    lake.ingest_bars(bars.filter(pl.col("ts").is_in(times[2:4].implode())), "replay")
    assert json.loads((folder / CURSOR).read_text())["remaining"] == 8
    assert remaining(folder, lake) == 6
    result = release(folder, lake, 3)
    assert (result.released_bars, result.through, result.remaining) == (3, times[6], 3)
    # One symbol ahead of the other (an ingest of AAA alone): BBB catches up first.
    lake.ingest_bars(bars.filter(pl.col("symbol") == "AAA", pl.col("ts") == times[7]), "replay")
    step = release(folder, lake, 1)
    assert (step.released_bars, step.through, step.remaining) == (1, times[7], 2)
    assert lake.read_bars().filter(pl.col("ts") == times[7]).height == 2
    release(folder, lake, 10)
    _stored_once(lake, bars)


def test_hold_back_refuses_bad_counts_and_a_different_unreleased_set(tmp_path, replay, bars):
    lake, _ = replay
    folder = tmp_path / "replay"
    for n in (0, 40):
        with pytest.raises(ValueError, match=rf"between 1 and 39 bars .* got {n}"):
            hold_back(tmp_path / "other", bars, n)
    again = hold_back(folder, bars, 10)  # the same set: a re-run ingest changes nothing
    assert again.height == 2 * 30
    with pytest.raises(ValueError, match="not fully released yet; release them first"):
        hold_back(folder, bars, 5)
    release(folder, lake, 10)
    rest = hold_back(folder, bars, 5)  # the old set is out: a new one may replace it
    assert rest.height == 2 * 35 and remaining(folder, lake) == 0  # the lake has them
    with pytest.raises(ValueError, match="at least 1 bar"):
        release(folder, lake, 0)


def test_no_replay_folder_says_how_to_make_one(tmp_path):
    lake = Lake(tmp_path / "lake")
    with pytest.raises(NoHeldBackBarsError, match="ingest with --hold-back N first"):
        release(tmp_path / "replay", lake, 1)
    with pytest.raises(NoHeldBackBarsError, match="ingest with --hold-back N first"):
        remaining(tmp_path / "replay", lake)
    assert not (tmp_path / "replay").exists()
