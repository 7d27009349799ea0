"""A failing config is recorded FAILED with its traceback while the others go on; the
deployments `factory serve` registers have the right flows, parameters and schedule, and
`make ui` serves them on the port and FACTORY_HOME in use."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from mlflow.artifacts import download_artifacts
from prefect import flow
from prefect.testing.utilities import prefect_test_harness

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.grid import expand
from factory.paths import PROJECT_ROOT, FactoryPaths
from factory.tracking import Tracker
from factory.training.datasets import DatasetRef, cache_bars, cache_features
from factory.training.fit import run_chunk
from factory.training.outcomes import load_outcomes, outcome_dir
from tasks.results import JSON_RESULTS
from tasks.training import train_chunk_task


@pytest.fixture()
def paths(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return FactoryPaths(tmp_path)


@pytest.fixture()
def prepared(paths):
    """A one-asset planted-signal lake, its cached features and the smoke lightgbm spec."""
    lake = Lake(paths.lake)
    lake.ingest_bars(synthetic_bars(symbols=("AAA",), n_bars=500, seed=2, signal=0.5), "syn")
    specs = [s for s in expand(load_config("smoke"), ("AAA",)).specs if s.arch == "lightgbm"][:1]
    ref = DatasetRef.for_lake(paths.cache, lake, lake.version(), ("AAA",))
    cache_bars(lake, ref)
    cache_features(ref, "raw_ohlcv", specs[0].feature_params)
    return lake, specs, ref


def test_failing_config_is_recorded_failed_and_the_others_go_on(paths, prepared):
    lake, specs, ref = prepared
    broken = specs[0].model_copy(update={"hparams": {**specs[0].hparams, "no_such_hparam": 1}})
    outcomes = run_chunk([broken, specs[0]], ref, paths.runs)

    assert [o.status for o in outcomes] == ["FAILED", "FINISHED"]
    assert "no_such_hparam" in outcomes[0].error
    held = outcomes[1].oos["label"].to_numpy().copy()
    held[0] -= specs[0].evaluation.cost_bps / 1e4  # entering the position once
    expected = held.mean() / held.std(ddof=1) * np.sqrt(365)  # synthetic bars: every day
    assert outcomes[1].metrics["buy_and_hold_sharpe"] == pytest.approx(expected, rel=1e-9)
    tracker = Tracker(paths)
    run_ids = [tracker.start_outcome(o, lake.version(), "test", "smoke") for o in outcomes[:2]]
    for run_id, outcome in zip(run_ids, outcomes, strict=False):
        tracker.finish_outcome(run_id, outcome.status)
    failed_run = run_ids[0]
    run = tracker.client.get_run(failed_run)
    assert run.info.status == "FAILED"
    assert run.data.tags["spec_id"] == broken.id
    traceback = download_artifacts(run_id=failed_run, artifact_path="traceback.txt",
                                   tracking_uri=paths.tracking_uri)
    assert "no_such_hparam" in Path(traceback).read_text()
    assert tracker.latest_versions()["model_name"].to_list() == [specs[0].model_name]
    assert run.info.artifact_uri.startswith(paths.artifact_root.as_uri())


def test_training_chunk_is_cached_by_spec_ids_and_lake_version(paths, prepared):
    _lake, specs, ref = prepared

    @flow
    def train_twice():
        first = train_chunk_task(specs, ref, paths.runs, "a", return_state=True)
        second = train_chunk_task(specs, ref, paths.runs, "b", return_state=True)
        forced = train_chunk_task.with_options(refresh_cache=True)(
            specs, ref, paths.runs, "c", return_state=True)
        return first, second, forced

    with prefect_test_harness(server_startup_timeout=120):
        first, second, forced = train_twice()
    assert (first.name, second.name, forced.name) == ("Completed", "Cached", "Completed")
    stored = [str(outcome_dir(paths.runs, specs[0], ref.lake_version))]
    assert first.result() == second.result() == forced.result() == stored
    [outcome] = load_outcomes(second.result(), paths.runs)
    assert (outcome.spec, outcome.status) == (specs[0], "FINISHED")
    assert outcome.portfolio.height > 0 and "sharpe" in outcome.metrics


def test_the_training_cache_serializer_decodes_plain_json_only():
    assert (JSON_RESULTS.type, JSON_RESULTS.jsonlib, JSON_RESULTS.object_decoder) == (
        "json", "json", None)
    assert train_chunk_task.result_serializer is JSON_RESULTS
    # A record naming a class stays a plain dict: nothing is imported to rebuild it.
    blob = b'[{"__class__": "os.system", "data": "echo pwned"}, "runs/a/v1-outcome"]'
    assert JSON_RESULTS.loads(blob) == [{"__class__": "os.system", "data": "echo pwned"},
                                        "runs/a/v1-outcome"]
    # A failed run's exception is written as JSON, not pickled.
    stored = JSON_RESULTS.dumps(FileNotFoundError("gone"))
    assert JSON_RESULTS.loads(stored) == {"__exc_type__": "builtins.FileNotFoundError",
                                          "message": "gone"}


def test_deployments_trigger_factory_on_demand_snapshot_every_5_minutes_select_daily():
    from flows.serve import deployments

    factory, snapshot, selection, portfolio, backtest, maintenance = deployments(
        "demo", replay_bars=5)
    assert (factory.name, snapshot.name, selection.name, portfolio.name, backtest.name,
            maintenance.name) == ("factory", "snapshot-5min", "selection-daily",
                                  "portfolio-after-selection", "backtest",
                                  "lake-maintenance-weekly")
    # The portfolio runs when a run of the selection deployment completes, on no schedule.
    (trigger,) = portfolio.triggers
    assert trigger.expect == {"prefect.flow-run.Completed"}
    assert trigger.match_related.root == {"prefect.resource.role": "deployment",
                                          "prefect.resource.name": "selection-daily"}
    assert not portfolio.schedules and not backtest.schedules
    assert portfolio.parameters == backtest.parameters == {"profile": "demo"}
    assert [s.schedule.interval for s in maintenance.schedules] == [timedelta(days=7)]
    assert factory.parameters == selection.parameters == {"profile": "demo"}
    assert snapshot.parameters == {"replay_bars": 5}
    assert not factory.schedules
    assert [s.schedule.interval for s in snapshot.schedules] == [timedelta(minutes=5)]
    assert [s.schedule.interval for s in selection.schedules] == [timedelta(hours=24)]


def _make(*arguments: str) -> str:
    done = subprocess.run(["make", "--no-print-directory", *arguments], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, check=True, timeout=120)
    return done.stdout


def test_make_ui_serves_the_prefect_port_and_the_factory_home_in_use(tmp_path):
    home = tmp_path / "home"
    commands = _make("-n", "ui", "PREFECT_PORT=4999", f"FACTORY_HOME={home}")
    assert "PREFECT_UI_API_URL=http://127.0.0.1:4999/api" in commands  # else the UI calls 4200
    assert "--port 4999" in commands
    assert f"--backend-store-uri sqlite:///{home}/mlflow/mlflow.db" in commands
    assert f"--default-artifact-root {home}/mlflow/artifacts" in commands
    shown = _make("--eval", "show-homes: ; @echo $$FACTORY_HOME $$PREFECT_HOME", "show-homes",
                  f"FACTORY_HOME={home}")
    assert shown.split() == [str(home), f"{home}/.prefect"]
    shown = _make("--eval", "show-homes: ; @echo $$FACTORY_HOME $$PREFECT_HOME", "show-homes",
                  "FACTORY_HOME=")
    assert shown.split() == [str(PROJECT_ROOT), f"{PROJECT_ROOT}/.prefect"]
