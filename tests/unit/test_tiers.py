"""The lake's tiers: hot (in process and in a real Redis), warm Delta tables kept z-ordered,
compacted and vacuumed, and a cold archive that old bars move to while every read, as of any
time or at any version, stays exactly what it was."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime, timedelta

import polars as pl
import pytest
from typer.testing import CliRunner

from factory.cli_lake import lake_app
from factory.data.cold import ColdTierNotConfiguredError, copy_to_cold, migrate_to_cold
from factory.data.lake import BARS, COLD_URI_ENV, Lake
from factory.data.maintenance import TIME_TRAVEL_ENV, check_retention, maintain, maintain_home
from factory.data.sources import synthetic_bars
from factory.data.tiers import (
    HOT_URL_ENV,
    InProcessHotTier,
    RedisHotTier,
    home_prefix,
    hot_tier,
)
from factory.locking import HomeBusyError
from factory.paths import FactoryPaths
from factory.snapshot import HISTORY_BARS, UniverseBars

START = datetime(2020, 1, 1)
NOW = START + timedelta(days=120)  # migrations count ages from here
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synthetic_bars(("AAA", "BBB"), n_bars=100, seed=4, start="2020-01-01")


def _fill(lake: Lake, bars: pl.DataFrame) -> list[datetime]:
    """Four commits: days 0-59, a correction of day 10, days 60-99, a correction of day 80.

    Returns a moment after each commit, for as-of reads.
    """
    moments = []
    for batch, source in ((bars.filter(pl.col("ts") < START + timedelta(days=60)), "first"),
                          (_revised(bars, START + timedelta(days=10)), "fix-10"),
                          (bars.filter(pl.col("ts") >= START + timedelta(days=60)), "second"),
                          (_revised(bars, START + timedelta(days=80)), "fix-80")):
        lake.ingest_bars(batch, source)
        moments.append(lake.read_table(BARS)["knowledge_ts"].max())
    return moments


def _revised(bars: pl.DataFrame, ts: datetime) -> pl.DataFrame:
    """AAA's bar at ``ts`` with its close (and high) revised upwards."""
    row = bars.filter(pl.col("symbol") == "AAA", pl.col("ts") == ts)
    return row.with_columns(close=pl.col("high") + 1.0, high=pl.col("high") + 2.0)


def _reads(lake: Lake, moments: list[datetime]) -> dict[str, pl.DataFrame]:
    """Every read a run could have recorded: latest, as of each commit, at each version."""
    reads = {"latest": lake.read_bars(), "AAA": lake.read_bars(["AAA"])}
    reads |= {f"as of {m}": lake.read_bars(as_of=m) for m in moments}
    reads |= {f"version {v}": lake.read_bars(version=v) for v in range(len(moments))}
    return reads


def _assert_same(before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]) -> None:
    assert before.keys() <= after.keys()
    for name, frame in before.items():
        assert after[name].equals(frame), name


@pytest.fixture
def tiered(tmp_path, bars) -> tuple[FactoryPaths, Lake, list[datetime]]:
    """A home whose lake has a cold tier in a local folder, filled by `_fill`."""
    paths = FactoryPaths(tmp_path)
    lake = Lake(paths.lake, cold_root=tmp_path / "cold")
    return paths, lake, _fill(lake, bars)


def test_migration_moves_old_bars_and_no_read_changes(tiered):
    paths, lake, moments = tiered
    before = _reads(lake, moments)
    frequencies = lake.bar_frequencies()
    summary = migrate_to_cold(paths, timedelta(days=90), lake=lake, now=NOW)
    assert summary.cutoff == START + timedelta(days=30)
    assert summary.rows_copied == summary.rows_deleted == 2 * 30 + 1  # with the correction
    assert lake.read_table(BARS)["ts"].min() == summary.cutoff
    cold = pl.read_delta(lake.cold_uri())
    assert cold["ts"].max() < summary.cutoff and cold.height == summary.rows_copied
    _assert_same(before, _reads(lake, moments))  # as-of reads across both tiers, time travel
    assert lake.read_bars(version=lake.version()).equals(before["latest"])
    assert lake.bar_frequencies() == frequencies and lake.symbols() == ["AAA", "BBB"]
    again = migrate_to_cold(paths, timedelta(days=90), lake=lake, now=NOW)
    assert (again.rows_copied, again.rows_deleted) == (0, 0)
    assert (again.warm_version, again.cold_version) == (summary.warm_version, 0)


def test_a_migration_killed_between_its_commits_is_finished_by_the_next(tiered):
    paths, lake, moments = tiered
    before = _reads(lake, moments)
    copied, _ = copy_to_cold(lake, START + timedelta(days=30))  # killed before the delete
    assert copied == 61 and lake.version() == len(moments) - 1
    _assert_same(before, _reads(lake, moments))  # rows in both tiers count once
    summary = migrate_to_cold(paths, timedelta(days=90), lake=lake, now=NOW)
    assert (summary.rows_copied, summary.rows_deleted) == (0, 61)
    cold = pl.read_delta(lake.cold_uri())
    assert cold.height == 61 and cold.select("symbol", "ts", "knowledge_ts").is_unique().all()
    _assert_same(before, _reads(lake, moments))


def test_ingest_after_migration_sees_the_archived_bars(tiered, bars):
    paths, lake, _ = tiered
    migrate_to_cold(paths, timedelta(days=90), lake=lake, now=NOW)
    known = lake.read_bars()
    assert lake.ingest_bars(known, "again").rows_added == 0  # archived bars are not new
    before_fix = datetime.now()
    fix = _revised(bars, START + timedelta(days=5))  # an archived bar
    assert lake.ingest_bars(fix, "fix-5").rows_corrected == 1
    day5 = (pl.col("symbol") == "AAA") & (pl.col("ts") == fix["ts"].item())
    assert lake.read_bars().filter(day5)["close"].item() == fix["close"].item()
    assert lake.read_bars(as_of=before_fix).equals(known)


def test_migration_needs_a_cold_tier_and_the_writer_lock(tmp_path, bars):
    paths = FactoryPaths(tmp_path)
    with pytest.raises(ColdTierNotConfiguredError, match=COLD_URI_ENV):
        migrate_to_cold(paths, timedelta(days=1), lake=Lake(paths.lake, cold_root=""))
    lake = Lake(paths.lake, cold_root=tmp_path / "cold")
    lake.ingest_bars(bars, "syn")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
         "from factory.locking import writer_lock\nfrom factory.paths import FactoryPaths\n"
         "with writer_lock(FactoryPaths(Path(sys.argv[1])), 'ingest'):\n"
         "    print('held', flush=True)\n    sys.stdin.read()\n", str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(HomeBusyError, match="`ingest`"):
            migrate_to_cold(paths, timedelta(days=1), lake=lake, now=NOW, wait=False)
        with pytest.raises(HomeBusyError, match="`ingest`"):
            maintain_home(paths, lake=lake, wait=False)
    finally:
        holder.kill()
        holder.wait()
    assert lake.version() == 0 and lake.cold_uri() and not (tmp_path / "cold").exists()


def test_the_cold_uri_comes_from_the_environment_for_the_homes_lake_only(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    monkeypatch.setenv(COLD_URI_ENV, "s3://archive/cold/")
    assert Lake(FactoryPaths(tmp_path).lake).cold_uri() == "s3://archive/cold/bars"
    assert Lake(tmp_path / "elsewhere").cold_uri() is None
    assert Lake(FactoryPaths(tmp_path).lake, cold_root="").cold_uri() is None


def test_maintain_rewrites_small_files_keeps_reads_and_time_travel(tiered):
    paths, lake, moments = tiered
    migrate_to_cold(paths, timedelta(days=90), lake=lake, now=NOW)
    lake.append_table("strategy_returns", pl.DataFrame({"run_id": ["a"], "ret": [0.1]}))
    lake.append_table("strategy_returns", pl.DataFrame({"run_id": ["b"], "ret": [0.2]}))
    before = _reads(lake, moments)
    summary = maintain(lake)
    tables = {t.uri.rsplit("/", 2)[-2] + "/" + t.uri.rsplit("/", 1)[-1]: t
              for t in summary.tables}
    assert tables["lake/bars"].operation == "z-order (symbol, ts)"
    assert tables["lake/bars"].files_removed >= 3 and tables["lake/bars"].files_added == 1
    assert tables["lake/strategy_returns"].operation == "compact"
    assert tables["cold/bars"].operation == "none"  # one migration: one file
    assert summary.files_compacted == sum(t.files_removed for t in summary.tables)
    assert summary.retention == timedelta(days=7)
    assert all(t.files_vacuumed == 0 for t in summary.tables)  # every file is recent
    _assert_same(before, _reads(lake, moments))  # old versions still read: files kept
    assert "kept every version of the last 7 days" in summary.lines()[-1]
    version = lake.version()
    assert maintain(lake).files_compacted == 0 and lake.version() == version


def test_vacuum_keeps_what_time_travel_needs_and_refuses_less(tiered, monkeypatch):
    paths, lake, moments = tiered
    with pytest.raises(ValueError, match=r"retention 1 day is shorter than .* 7 days"):
        check_retention(timedelta(days=1))
    monkeypatch.setenv(TIME_TRAVEL_ENV, "2")
    with pytest.raises(ValueError, match="retention 1 day is shorter than"):
        maintain(lake, timedelta(days=1))
    monkeypatch.setenv(TIME_TRAVEL_ENV, "a week")
    with pytest.raises(ValueError, match=TIME_TRAVEL_ENV):
        maintain(lake)
    monkeypatch.setenv(TIME_TRAVEL_ENV, "0")  # no time travel promised: vacuum everything
    latest = lake.read_bars()
    summary = maintain(lake, timedelta(0))
    assert sum(t.files_vacuumed for t in summary.tables) >= 3
    assert lake.read_bars().equals(latest)
    with pytest.raises(Exception, match=r"(?i)not found|no such file"):
        lake.read_bars(version=0)  # its files are gone: what the retention rule is for


def test_the_lake_commands_maintain_and_migrate(tmp_path, monkeypatch, bars):
    for name in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_LOGGING_LEVEL"):
        monkeypatch.setenv(name, "unused")  # restored after the test
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    monkeypatch.delenv(COLD_URI_ENV, raising=False)
    _fill(Lake(FactoryPaths(tmp_path).lake), bars)
    runner = CliRunner()
    done = runner.invoke(lake_app, ["maintain"])
    assert done.exit_code == 0, done.output
    assert "z-order (symbol, ts), 4 files into 1" in done.output
    refused = runner.invoke(lake_app, ["migrate", "--older-than", "30"])
    assert refused.exit_code == 1 and COLD_URI_ENV in refused.output
    monkeypatch.setenv(COLD_URI_ENV, str(tmp_path / "cold"))
    moved = runner.invoke(lake_app, ["migrate", "--older-than", "0"])
    assert moved.exit_code == 0, moved.output
    assert "202 rows copied, 202 deleted" in moved.output
    assert Lake(FactoryPaths(tmp_path).lake).read_bars().height == bars.height


def _redis_tier(tmp_path) -> RedisHotTier:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except redis.ConnectionError as err:
        pytest.skip(f"no Redis at {REDIS_URL} ({err}): the Redis hot tier is untested here")
    return RedisHotTier(REDIS_URL, home_prefix(FactoryPaths(tmp_path)))


@pytest.mark.parametrize("kind", ["in-process", "redis"])
def test_recent_bars_through_the_hot_tier_equal_a_full_read(tmp_path, kind):
    hot = _redis_tier(tmp_path) if kind == "redis" else InProcessHotTier()
    hourly = synthetic_bars(("AAA", "BBB"), n_bars=440, seed=9, freq="1h")
    times = hourly["ts"].unique().sort()
    lake = Lake(tmp_path / "lake")
    lake.ingest_bars(hourly.filter(pl.col("ts") <= times[399]), "first")
    fed = [hourly.filter(pl.col("ts").is_between(times[400], times[409])),
           _revised(hourly, times[405]),  # a recent correction
           _revised(hourly, times[20]),  # a correction of a bar the hot tier dropped
           hourly.filter(pl.col("ts") > times[409])]
    try:
        newest = times[399]
        for batch in [None, *fed]:
            if batch is not None:
                lake.ingest_bars(batch, "feed")
            version = lake.version()
            fast = UniverseBars(lake, "AAA,BBB", version, hot)
            plain = UniverseBars(lake, "AAA,BBB", version)
            for after in (newest, times[300], times[100]):
                assert fast.recent_bars(after).equals(plain.recent_bars(after)), after
            assert fast.recent_bars(newest).height >= 2 * HISTORY_BARS
            newest = lake.read_bars()["ts"].max()
        fresh = UniverseBars(lake, "AAA,BBB", lake.version(), hot)
        assert fresh.recent_bars(times[420]).equals(plain.recent_bars(times[420]))
        assert "bars" not in vars(fresh)  # served from the hot tier: no full read
        entry = hot.load("AAA")
        assert not entry.complete and entry.bars.height < 440 and entry.lake_version == 4
        if kind == "redis":
            raw = hot._client.hget(hot.prefix + "AAA", "ipc")
            assert raw.startswith(b"ARROW1")  # Arrow IPC, never pickle
            assert pl.read_ipc(io.BytesIO(raw)).equals(entry.bars)
    finally:
        hot.clear()
    assert hot.load("AAA") is None


def test_the_hot_tier_is_chosen_by_the_environment_one_per_home(tmp_path, monkeypatch):
    monkeypatch.delenv(HOT_URL_ENV, raising=False)
    one, other = FactoryPaths(tmp_path / "one"), FactoryPaths(tmp_path / "other")
    assert isinstance(hot_tier(one), InProcessHotTier)
    assert hot_tier(one) is hot_tier(one) and hot_tier(one) is not hot_tier(other)
    assert home_prefix(one) != home_prefix(other)
    monkeypatch.setenv(HOT_URL_ENV, REDIS_URL)
    tier = hot_tier(one)
    assert isinstance(tier, RedisHotTier) and tier.prefix == home_prefix(one)
    with pytest.raises(ConnectionError, match=f"hot tier \\({HOT_URL_ENV}\\) is unreachable"):
        RedisHotTier("redis://127.0.0.1:1/0", home_prefix(one)).load("AAA")
