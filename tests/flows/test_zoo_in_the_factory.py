"""Every architecture of the zoo through the real factory, trained on a real Dask cluster:
the ci profile trains each one (real Prefect flow whose train-chunk tasks run on a
``distributed.LocalCluster`` of two worker processes through prefect-dask, sqlite MLflow,
Delta lake) on two planted-signal assets, logs and registers it exactly once, and each
registered version, loaded from the registry by name, turns raw bars into scores and
positions. The workers share FACTORY_HOME's path with the flow, as a real cluster's would
(flows/executors.py); the local process pool runs the same flow in the other flow tests."""

from __future__ import annotations

import os
from collections import Counter

import mlflow.pyfunc
import numpy as np
import pytest
from distributed import Client, LocalCluster, get_task_stream
from distributed.utils import key_split
from prefect.settings import temporary_settings
from prefect.testing.utilities import prefect_test_harness

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.paths import configure_environment
from factory.tracking import Tracker
from model_zoo.registry import ARCHITECTURES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def zoo_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo_home")
    saved = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL"):
        os.environ.pop(key, None)
    os.environ["FACTORY_HOME"] = str(root)
    paths = configure_environment()
    bars = synthetic_bars(symbols=("AAA", "BBB"), n_bars=600, seed=5, signal=0.5)
    Lake(paths.lake).ingest_bars(bars, "synthetic")
    # The cluster is started after configure_environment, so its workers inherit the home
    # and the one-thread settings; it is shut down as soon as the run ends (or fails).
    with (LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                       dashboard_address=None) as cluster,
          Client(cluster, set_as_default=False) as client,
          prefect_test_harness(server_startup_timeout=120),
          temporary_settings(updates={"results.local_storage_path": root / "results"})):
        from flows.factory_flow import run_factory
        from flows.runtime import shared_prefect_api

        worker_pids = client.run(os.getpid)
        with shared_prefect_api(), get_task_stream(client) as stream:
            summary = run_factory("ci", dask_address=cluster.scheduler_address)
    yield {"paths": paths, "bars": bars, "summary": summary, "worker_pids": worker_pids,
           "task_stream": stream.data, "chunk_size": load_config("ci").execution.chunk_size}
    os.environ.clear()
    os.environ.update(saved)


def test_every_architecture_trains_in_the_ci_profile(zoo_home):
    summary = zoo_home["summary"]
    assert summary["failed"] == []
    assert len(summary["finished"]) == summary["n_specs"] == len(ARCHITECTURES)


def test_the_training_ran_on_both_workers_of_the_dask_cluster(zoo_home):
    summary, workers = zoo_home["summary"], zoo_home["worker_pids"]
    assert len(set(workers.values()) | {os.getpid()}) == 3  # two processes besides this one
    trained = [t for t in zoo_home["task_stream"] if key_split(t["key"]) == "train_chunk_task"]
    assert len(trained) == -(-summary["n_specs"] // zoo_home["chunk_size"])  # each chunk once
    assert {t["status"] for t in trained} == {"OK"}
    assert {t["worker"] for t in trained} == set(workers)


def test_every_spec_is_logged_exactly_once(zoo_home):
    tracker = Tracker(zoo_home["paths"])
    runs = tracker.client.search_runs([tracker.experiment_id], max_results=1000)
    logged = Counter(run.data.tags["spec_id"] for run in runs)
    assert set(logged.values()) == {1}
    assert sorted(logged) == sorted(zoo_home["summary"]["finished"])
    assert {run.info.status for run in runs} == {"FINISHED"}


def test_every_registered_architecture_serves_raw_bars_by_name(zoo_home):
    latest = Tracker(zoo_home["paths"]).latest_versions()
    assert sorted(name.split("-L")[0] for name in latest["model_name"]) == sorted(ARCHITECTURES)
    bars = zoo_home["bars"].tail(400 * 2).to_pandas()
    for name, version in zip(latest["model_name"], latest["version"], strict=True):
        served = mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(bars)
        assert list(served.columns) == ["score", "position"], name
        scored = served["position"].to_numpy()[-100:]
        assert np.isfinite(scored).all() and (np.abs(scored) <= 1).all(), name
