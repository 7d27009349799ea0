"""The CLI a user meets with their own files: one short message and exit code 1 for every
error (traceback only with --verbose), nothing committed by a refused ingest, the lake's own
state reported, and two writers at once never doubling a write (real lake, real processes)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from factory.cli import app
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.locking import writer_lock
from factory.paths import FactoryPaths

runner = CliRunner()


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    for inherited in ("MLFLOW_TRACKING_URI", "PREFECT_HOME"):  # set by earlier commands
        monkeypatch.delenv(inherited, raising=False)
    return tmp_path


def _csv(path: Path, bars: pl.DataFrame) -> Path:
    bars.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d")).write_csv(path)
    return path


def _ingest(*args: str):
    return runner.invoke(app, ["ingest", *args])


def test_a_refused_ingest_is_one_short_block_and_commits_nothing(home):
    good = _csv(home / "good.csv", synthetic_bars(("AAA",), n_bars=60, seed=1))
    assert _ingest("--source", str(good)).exit_code == 0
    version = Lake(home / "data" / "lake").version()
    bad_bars = synthetic_bars(("AAA",), n_bars=80, seed=1).with_columns(
        high=pl.when(pl.int_range(pl.len()) == 70).then(1.0).otherwise(pl.col("high")))
    bad = _csv(home / "bad.csv", bad_bars)
    result = _ingest("--source", str(bad))
    assert result.exit_code == 1
    assert "bad.csv" in result.output and "high" in result.output
    assert "line 72" in result.output  # row 70 of the frame: line 72 under the header
    assert "nothing was committed" in result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) < 12
    assert Lake(home / "data" / "lake").version() == version


def test_verbose_adds_the_traceback(home):
    result = runner.invoke(app, ["--verbose", "ingest", "--source", str(home / "missing.csv")])
    assert result.exit_code == 1
    assert "Traceback" in result.output and "missing.csv" in result.output


def test_check_data_on_an_empty_lake_says_so(home):
    result = runner.invoke(app, ["check-data"])
    assert result.exit_code == 1
    assert "empty" in result.output and "factory ingest" in result.output
    assert "Traceback" not in result.output


def test_leaderboard_before_any_run_says_so_and_creates_nothing(home):
    result = runner.invoke(app, ["leaderboard"])
    assert result.exit_code == 1 and "factory run" in result.output
    assert not (home / "mlflow" / "mlflow.db").exists()


def test_symbols_that_match_nothing_are_an_error_not_an_empty_ingest(home):
    good = _csv(home / "aaa.csv", synthetic_bars(("AAA",), n_bars=30, seed=1))
    result = _ingest("--source", str(good), "--symbols", "BBB")
    assert result.exit_code == 1
    assert "BBB" in result.output and "AAA" in result.output
    assert Lake(home / "data" / "lake").version() is None


def test_symbol_names_the_asset_of_a_single_asset_file(home):
    bars = synthetic_bars(("X",), n_bars=30, seed=2).drop("symbol")
    path = home / "download (1).csv"
    bars.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d")).write_csv(path)
    assert _ingest("--source", str(path), "--symbol", "BTC-USD").exit_code == 0
    assert Lake(home / "data" / "lake").symbols() == ["BTC-USD"]


@pytest.mark.parametrize("name", ["../../x", "a b", "a/b", ".."])
def test_a_symbol_that_could_escape_the_home_is_refused(home, name):
    bars = synthetic_bars(("X",), n_bars=30, seed=2).drop("symbol")
    path = _csv(home / "one.csv", bars)
    result = _ingest("--source", str(path), "--symbol", name)
    assert result.exit_code == 1 and "symbol" in result.output
    assert Lake(home / "data" / "lake").version() is None
    assert not (home.parent / "x").exists()


def test_duplicates_after_utc_conversion_show_both_rows_and_the_instant(home):
    header = "timestamp,open,high,low,close,volume\n"
    (home / "a.csv").write_text(header + "2021-03-14T01:00:00-05:00,1,2,0.5,1.5,10\n"
                                "2021-03-14T02:00:00-05:00,1,2,0.5,1.5,10\n")
    (home / "b.csv").write_text(header + "2021-03-14T07:00:00Z,1,2,0.5,1.6,10\n"
                                "2021-03-14T08:00:00Z,1,2,0.5,1.7,10\n")
    args = ["--source", str(home / "a.csv"), "--source", str(home / "b.csv"), "--symbol", "ES"]
    refused = _ingest(*args)
    assert refused.exit_code == 1
    assert "2021-03-14 07:00:00" in refused.output
    assert "a.csv line 3" in refused.output and "b.csv line 2" in refused.output
    assert "2021-03-14T02:00:00-05:00" in refused.output  # the original row, as written
    kept = _ingest(*args, "--on-duplicate", "keep-last")
    assert kept.exit_code == 0, kept.output
    assert "dropped 1 duplicate rows (keep-last)" in kept.output
    bars = Lake(home / "data" / "lake").read_bars()
    assert bars.height == 3
    assert bars.filter(pl.col("ts").dt.hour() == 7)["close"].item() == 1.6


def test_a_second_writer_without_wait_exits_with_a_clear_message(home):
    good = _csv(home / "good.csv", synthetic_bars(("AAA",), n_bars=30, seed=1))
    env = {**os.environ, "FACTORY_HOME": str(home)}
    with writer_lock(FactoryPaths(home), "factory run --profile demo"):
        result = subprocess.run(
            [sys.executable, "-m", "factory.cli", "ingest", "--source", str(good), "--no-wait"],
            env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "in use by `factory run --profile demo`" in result.stderr
    assert Lake(home / "data" / "lake").version() is None


def test_two_ingests_of_one_file_at_once_store_it_once(home):
    good = _csv(home / "good.csv", synthetic_bars(("AAA",), n_bars=300, seed=1))
    env = {**os.environ, "FACTORY_HOME": str(home)}
    command = [sys.executable, "-m", "factory.cli", "ingest", "--source", str(good)]
    both = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in both]
    assert [p.returncode for p in both] == [0, 0], outputs
    lake = Lake(home / "data" / "lake")
    assert lake.read_table("bars").height == 300
    added = sorted(int(re.search(r"(\d+) rows added", o).group(1)) for o in outputs)
    assert added == [0, 300]


def test_daily_files_stamped_at_different_hours_are_refused_or_aligned(home):
    bars = synthetic_bars(("SPY",), n_bars=40, seed=3)
    bars.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d 00:00")).write_csv(home / "a.csv")
    later = bars.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d 16:00"), pl.col("close") * 1.01,
                              pl.col("high") * 1.01)
    later.write_csv(home / "b.csv")
    args = ["--source", str(home / "a.csv"), "--source", str(home / "b.csv")]
    refused = _ingest(*args)
    assert refused.exit_code == 1
    assert "b.csv line" in refused.output and "--align-daily-bars" in refused.output
    aligned = _ingest(*args, "--align-daily-bars", "--on-duplicate", "keep-last")
    assert aligned.exit_code == 0, aligned.output
    assert "1d crypto bars" in aligned.output  # synthetic bars trade every day
    stored = Lake(home / "data" / "lake").read_bars()
    assert stored.height == 40 and stored["ts"].dt.hour().max() == 0
    assert stored["close"].to_list() == later["close"].to_list()


@pytest.mark.parametrize("command", [["run", "--profile", "smoke"],
                                     ["select", "--profile", "smoke"]])
def test_run_and_select_wait_for_the_writer_of_their_home(home, command):
    env = {**os.environ, "FACTORY_HOME": str(home)}
    with writer_lock(FactoryPaths(home), "factory ingest x.csv"):
        result = subprocess.run([sys.executable, "-m", "factory.cli", *command, "--no-wait"],
                                env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "in use by `factory ingest x.csv`" in result.stderr
    assert not (home / "mlflow" / "mlflow.db").exists()  # nothing started before the lock
