"""``factory run --search optuna`` end to end: the smoke profile's two studies (lightgbm and
logistic regression over search axes wider than its grid) through a real Prefect API
(prefect_test_harness), a real sqlite MLflow and Optuna storage and real Delta tables in a
temporary home, run twice (``--trials 2``, then 1); before the second run one trial's run is
set back to RUNNING, as a command killed while logging it leaves it.
"""

from __future__ import annotations

import os
from collections import Counter

import mlflow.pyfunc
import numpy as np
import optuna
import polars as pl
import pytest
from prefect.settings import temporary_settings
from prefect.testing.utilities import prefect_test_harness

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.data.strategy_returns import candidate_records
from factory.paths import configure_environment
from factory.search import storage_url
from factory.tracking import (
    FAILURE_TAG,
    MANAGED_TAG,
    PARENT_TAG,
    REGISTERED_TAG,
    STUDY_ROLE_TAG,
    STUDY_TAG,
    TRIAL_STATE_TAG,
    TRIAL_TAG,
    Tracker,
)

pytestmark = pytest.mark.slow

SYMBOLS = "AAA,BBB"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home with planted-signal bars and two smoke searches, a trial run orphaned between."""
    root = tmp_path_factory.mktemp("search_home")
    saved = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL",
                "FACTORY_OPTUNA_STORAGE"):
        os.environ.pop(key, None)
    os.environ["FACTORY_HOME"] = str(root)
    paths = configure_environment()
    bars = synthetic_bars(symbols=("AAA", "BBB"), n_bars=600, seed=11, signal=0.5)
    Lake(paths.lake).ingest_bars(bars, "syn")
    with (prefect_test_harness(server_startup_timeout=120),
          temporary_settings(updates={"results.local_storage_path": root / "results"})):
        from flows.runtime import shared_prefect_api
        from flows.search_flow import run_search

        with shared_prefect_api():
            first = run_search("smoke", workers=1, trials=2)
            tracker = Tracker(paths)
            orphan = _trial_runs(tracker)[0]
            tracker.client.update_run(orphan.info.run_id, status="RUNNING")
            second = run_search("smoke", workers=1, trials=1)
    yield {"paths": paths, "bars": bars, "first": first, "second": second, "orphan": orphan}
    os.environ.clear()
    os.environ.update(saved)


def _runs(tracker: Tracker) -> list:
    return tracker.client.search_runs([tracker.experiment_id], max_results=1000)


def _trial_runs(tracker: Tracker, status: str = "FINISHED") -> list:
    return [r for r in _runs(tracker) if TRIAL_TAG in r.data.tags and r.info.status == status]


def test_each_study_has_a_parent_run_and_its_trials_nest_under_it(home):
    tracker = Tracker(home["paths"])
    studies = {r.data.tags[STUDY_TAG]: r for r in _runs(tracker)
               if r.data.tags.get(STUDY_ROLE_TAG) == "study"}
    assert sorted(s["arch"] for s in home["second"]["studies"]) == [
        "lightgbm", "logistic_regression"]
    assert set(studies) == {s["study"] for s in home["second"]["studies"]}
    for run in studies.values():
        assert run.info.status == "FINISHED" and MANAGED_TAG not in run.data.tags
        assert run.data.tags["optuna.storage"].startswith("sqlite:///")
        assert run.data.metrics["n_trained"] == 3  # 2, then 1 more
    trials = _trial_runs(tracker)
    assert len(trials) == 6
    for run in trials:
        parent = studies[run.data.tags[STUDY_TAG]]
        assert run.data.tags[PARENT_TAG] == parent.info.run_id
        assert run.data.tags[MANAGED_TAG] == "true"
        assert run.data.tags[TRIAL_STATE_TAG] in ("COMPLETE", "PRUNED")


def test_every_trial_counts_in_the_deflated_sharpe_s_n_and_the_study_runs_do_not(home):
    tracker = Tracker(home["paths"])
    trials = _trial_runs(tracker)
    sharpes = tracker.trial_sharpes(SYMBOLS)
    assert len(sharpes) == len(trials) == 6
    assert sorted(sharpes) == pytest.approx(sorted(r.data.metrics["sharpe"] for r in trials))


def test_a_second_run_adds_trials_and_logs_none_twice(home):
    assert [s["new_trials"] for s in home["first"]["studies"]] == [2, 2]
    assert [s["new_trials"] for s in home["second"]["studies"]] == [1, 1]
    assert home["second"]["orphaned_runs_failed"] == [home["orphan"].info.run_id]
    tracker = Tracker(home["paths"])
    keys = Counter((r.data.tags[STUDY_TAG], r.data.tags[TRIAL_TAG]) for r in _trial_runs(tracker))
    assert set(keys.values()) == {1}
    orphan = tracker.client.get_run(home["orphan"].info.run_id)
    assert orphan.info.status == "FAILED" and orphan.data.tags[FAILURE_TAG] == "killed"
    key = (orphan.data.tags[STUDY_TAG], orphan.data.tags[TRIAL_TAG])
    assert keys[key] == 1  # logged again, once
    storage = storage_url(load_config("smoke").search, home["paths"].mlflow)
    for summary in home["second"]["studies"]:
        study = optuna.load_study(study_name=summary["study"], storage=storage)
        trained = [t for t in study.trials if "outcome" in t.user_attrs]
        assert len(trained) == 3 and len({t.user_attrs["spec_id"] for t in trained}) == 3


def test_only_the_best_trials_are_registered_and_they_serve_raw_bars(home):
    tracker = Tracker(home["paths"])
    latest = tracker.latest_versions()
    by_run = {r.info.run_id: r for r in _trial_runs(tracker)}
    assert set(latest["run_id"]) <= set(by_run)  # every candidate is a trial's own run
    registered = [by_run[run_id] for run_id in latest["run_id"]]
    per_study = Counter(r.data.tags[STUDY_TAG] for r in registered)
    assert set(per_study) == {s["study"] for s in home["second"]["studies"]}
    assert all(1 <= n <= 2 for n in per_study.values())  # top_k = 1, per invocation
    for study in per_study:
        runs = [r for r in by_run.values() if r.data.tags[STUDY_TAG] == study
                and r.data.tags[TRIAL_STATE_TAG] == "COMPLETE"]
        best = max(runs, key=lambda r: r.data.metrics["sharpe"])
        assert best.data.tags.get(REGISTERED_TAG) == "true"
    assert all(r.data.tags[TRIAL_STATE_TAG] == "COMPLETE" for r in registered)
    unregistered = {r.data.tags["spec_id"] for r in by_run.values()
                    if REGISTERED_TAG not in r.data.tags}
    # the grid would still train the trials it did not register
    assert tracker.trained_spec_ids(home["first"]["lake_version"]).isdisjoint(unregistered)
    records = candidate_records(Lake(home["paths"].lake), latest)
    assert set(records["model_name"]) == set(latest["model_name"])
    bars = home["bars"].filter(pl.col("symbol") == "AAA").to_pandas()
    for name, version in zip(latest["model_name"], latest["version"], strict=True):
        served = mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(bars)
        assert list(served.columns) == ["score", "position"], name
        assert np.isfinite(served["score"].to_numpy()[-100:]).all(), name
