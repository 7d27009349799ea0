"""A factory command killed while logging leaves runs RUNNING; the next factory run fails them
(tag ``factory.failure = killed``), deletes their model versions and logs each spec exactly
once more: re-logged from the training cache when the same chunk comes round again.

Real Prefect (prefect_test_harness), a real sqlite MLflow and real Delta tables in temporary
homes; the last test kills a real ``factory run`` process with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import polars as pl
import pytest
from prefect.settings import temporary_settings
from prefect.testing.utilities import prefect_test_harness

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.data.universe import resolve_symbols
from factory.grid import RunSpec, expand
from factory.paths import FactoryPaths, configure_environment
from factory.tracking import FAILURE_TAG, MANAGED_TAG, Tracker
from factory.training.outcomes import OutcomeMissingError, outcome_dir

pytestmark = pytest.mark.slow

HOME_ENV = ("FACTORY_HOME", "MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL")


def _new_home(root: Path) -> tuple[FactoryPaths, Lake, list[RunSpec]]:
    """Point the environment at ``root``, ingest planted-signal bars, expand the smoke grid."""
    for key in HOME_ENV:
        os.environ.pop(key, None)
    os.environ["FACTORY_HOME"] = str(root)
    paths = configure_environment()
    lake = Lake(paths.lake)
    lake.ingest_bars(synthetic_bars(symbols=("AAA",), n_bars=500, seed=5, signal=0.5), "syn")
    config = load_config("smoke")
    return paths, lake, expand(config, resolve_symbols(config, lake)).specs


def _plant_running_run(tracker: Tracker, spec: RunSpec, lake_version: int) -> tuple[str, str]:
    """A managed run left RUNNING with a registered version, as a killed logger leaves it."""
    tags = {"spec_id": spec.id, "arch": spec.arch, "lake_version": str(lake_version),
            MANAGED_TAG: "true", "mlflow.runName": spec.label}
    run = tracker.client.create_run(tracker.experiment_id, tags=tags)
    if not tracker.client.search_registered_models(f"name = '{spec.model_name}'"):
        tracker.client.create_registered_model(spec.model_name, tags={MANAGED_TAG: "true"})
    version = tracker.client.create_model_version(
        spec.model_name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return run.info.run_id, version.version


def _runs_of(tracker: Tracker, spec: RunSpec, status: str | None = None) -> list:
    query = f"tags.spec_id = '{spec.id}'" + (f" and attributes.status = '{status}'"
                                              if status else "")
    return tracker.client.search_runs([tracker.experiment_id], query, max_results=1000)


def _set_running(tracker: Tracker, run) -> None:
    """Back to RUNNING: what a command killed after training, while logging, leaves."""
    tracker.client.update_run(run.info.run_id, status="RUNNING")


@pytest.fixture(scope="module")
def recovery(tmp_path_factory):
    """One home through three factory runs: after a planted orphan, after a kill while logging
    a cached chunk, and with a cached outcome deleted (then --force)."""
    saved = dict(os.environ)
    paths, lake, specs = _new_home(tmp_path_factory.mktemp("crash_home"))
    version = lake.version()
    tracker = Tracker(paths)
    planted_run, planted_version = _plant_running_run(tracker, specs[0], version)
    storage = paths.prefect_home / "storage"  # this module's flows' results only
    seen: dict = {"paths": paths, "specs": specs, "planted_run": planted_run,
                  "planted_version": planted_version, "result_storage": storage}
    with (prefect_test_harness(server_startup_timeout=120),
          temporary_settings(updates={"results.local_storage_path": storage})):
        from flows.factory_flow import run_factory
        from flows.runtime import shared_prefect_api

        with shared_prefect_api():
            seen["first"] = run_factory("smoke")
            # A retraining of specs[2] killed after it registered version 2.
            seen["retrain_killed"] = _plant_running_run(tracker, specs[2], version)
            seen["latest_beside_orphan"] = tracker.latest_versions().filter(
                pl.col("model_name") == specs[2].model_name)
            chunk = specs[:2]  # the first training chunk (smoke: chunk_size 2)
            seen["killed"] = [_runs_of(tracker, spec, "FINISHED")[0] for spec in chunk]
            for run in seen["killed"]:
                _set_running(tracker, run)
            seen["relogged"] = run_factory("smoke")
            seen["relogged_runs"] = [_runs_of(tracker, spec, "FINISHED") for spec in chunk]
            for [run] in seen["relogged_runs"]:
                _set_running(tracker, run)
            vanished = outcome_dir(paths.runs, specs[0], version)
            for path in sorted(vanished.rglob("*"), reverse=True):
                path.unlink()
            vanished.rmdir()
            with pytest.raises(OutcomeMissingError) as missing:
                run_factory("smoke")
            seen["missing"] = str(missing.value)
            seen["forced"] = run_factory("smoke", force=True)
            seen["vanished_is_back"] = vanished.is_dir()
    yield seen
    os.environ.clear()
    os.environ.update(saved)


def test_a_planted_orphan_is_failed_and_its_version_deleted(recovery):
    tracker = Tracker(recovery["paths"])
    spec = recovery["specs"][0]
    assert recovery["first"]["orphaned_runs_failed"] == [recovery["planted_run"]]
    planted = tracker.client.get_run(recovery["planted_run"])
    assert planted.info.status == "FAILED"
    assert planted.data.tags[FAILURE_TAG] == "killed"
    assert recovery["planted_run"] not in {
        v.run_id for v in tracker.client.search_model_versions(f"name = '{spec.model_name}'")}


def test_the_orphaned_spec_was_trained_and_logged_exactly_once(recovery):
    first = recovery["first"]
    assert first["failed"] == [] and first["n_skipped"] == 0
    assert sorted(first["finished"]) == sorted(s.id for s in recovery["specs"])
    assert first["finished"].count(recovery["specs"][0].id) == 1


def test_a_chunk_killed_while_logging_is_relogged_from_the_cache(recovery):
    tracker = Tracker(recovery["paths"])
    relogged, killed = recovery["relogged"], recovery["killed"]
    orphans = [r.info.run_id for r in killed] + [recovery["retrain_killed"][0]]
    assert sorted(relogged["orphaned_runs_failed"]) == sorted(orphans)
    assert sorted(relogged["finished"]) == sorted(s.id for s in recovery["specs"][:2])
    assert relogged["n_skipped"] == len(recovery["specs"]) - 2
    for old, new in zip(killed, recovery["relogged_runs"], strict=True):
        assert tracker.client.get_run(old.info.run_id).data.tags[FAILURE_TAG] == "killed"
        [new] = new  # exactly one FINISHED run of the spec after the re-log
        assert new.info.run_id != old.info.run_id
        # The same training, not a new one: wall-clock fit time cannot repeat to the bit.
        assert new.data.metrics["fit_seconds"] == old.data.metrics["fit_seconds"]


def test_a_killed_retraining_leaves_the_previous_version_serving(recovery):
    tracker = Tracker(recovery["paths"])
    spec = recovery["specs"][2]
    run_id, version = recovery["retrain_killed"]
    assert str(version) == "2"
    [serving] = recovery["latest_beside_orphan"].iter_rows(named=True)
    assert serving["version"] == "1" and serving["run_id"] != run_id
    assert recovery["relogged"]["n_skipped"] == 2  # not retrained: trained on this lake
    versions = tracker.client.search_model_versions(f"name = '{spec.model_name}'")
    assert run_id not in {v.run_id for v in versions}


def test_a_vanished_cached_outcome_says_to_force_and_force_retrains(recovery):
    assert "--force" in recovery["missing"]
    assert recovery["vanished_is_back"]
    forced = recovery["forced"]
    assert sorted(forced["finished"]) == sorted(s.id for s in recovery["specs"])


def test_prefect_stored_the_failed_run_and_the_training_cache_as_json(recovery):
    records = [p for p in recovery["result_storage"].rglob("*") if p.is_file()]
    assert len(records) >= 2  # the two training chunks, and the failed flow's exception
    for path in records:
        json.loads(path.read_bytes())
    assert any("OutcomeMissingError" in p.read_text() for p in records)


def test_no_run_is_left_running_and_every_live_version_is_of_a_finished_run(recovery):
    tracker = Tracker(recovery["paths"])
    runs = tracker.client.search_runs([tracker.experiment_id], max_results=1000)
    assert {r.info.status for r in runs} <= {"FINISHED", "FAILED"}
    assert all(r.data.tags.get(FAILURE_TAG) == "killed" for r in runs
               if r.info.status == "FAILED")
    finished = {r.info.run_id for r in runs if r.info.status == "FINISHED"}
    versions = tracker.client.search_model_versions(max_results=1000)
    assert versions and {v.run_id for v in versions} <= finished


# --- a real kill -------------------------------------------------------------------------


def _running_managed_runs(db: Path, mode: str = "ro") -> list[str]:
    """Managed runs RUNNING in the sqlite store, read directly (no MLflow client in between:
    it would migrate or create what the command under test is creating). After a kill,
    ``mode="rw"`` lets sqlite roll back the journal the killed writer left."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode={mode}", uri=True, timeout=1)) as con:
            rows = con.execute(
                "SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                "WHERE r.status = 'RUNNING' AND t.key = ? AND t.value = 'true'",
                (MANAGED_TAG,)).fetchall()
    except sqlite3.Error:  # not created yet, or locked by the writer this instant
        return []
    return [row[0] for row in rows]


def _factory_run(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "factory.cli", "run", "--profile", "smoke"],
                            env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _kill_while_logging(env: dict, db: Path, timeout: float = 600.0) -> list[str]:
    """Start ``factory run``, SIGKILL its process group once a managed run is RUNNING.

    Returns the runs RUNNING at the kill ([] if the command finished first)."""
    process = _factory_run(env)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if _running_managed_runs(db):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
                return _running_managed_runs(db, mode="rw")
            time.sleep(0.05)
        assert process.poll() is not None, "factory run logged no run within the timeout"
        return []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)


def test_a_factory_run_killed_while_logging_is_completed_by_the_next_run(tmp_path):
    saved = dict(os.environ)
    try:
        paths, lake, specs = _new_home(tmp_path / "home")
        env = {**os.environ, "PREFECT_HOME": str(paths.prefect_home)}
        db = paths.mlflow / "mlflow.db"
        killed: list[str] = []
        for _attempt in range(3):  # the kill can land between two runs: then kill again
            killed = _kill_while_logging(env, db)
            if killed:
                break
        assert killed, "every kill landed between two runs"
        second = subprocess.run([sys.executable, "-m", "factory.cli", "run", "--profile", "smoke"],
                                env=env, capture_output=True, text=True, timeout=600)
        assert second.returncode == 0, second.stdout + second.stderr
        tracker = Tracker(paths)
        for run_id in killed:
            run = tracker.client.get_run(run_id)
            assert (run.info.status, run.data.tags[FAILURE_TAG]) == ("FAILED", "killed")
        for spec in specs:
            [run] = _runs_of(tracker, spec, "FINISHED")
            assert run.data.tags["lake_version"] == str(lake.version())
            [version] = tracker.client.search_model_versions(f"name = '{spec.model_name}'")
            assert version.run_id == run.info.run_id
        assert _running_managed_runs(db, mode="rw") == []
    finally:
        os.environ.clear()
        os.environ.update(saved)
