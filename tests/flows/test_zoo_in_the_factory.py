"""Every architecture of the zoo through the real factory: the ci profile trains each one
(real Prefect flow with process workers, sqlite MLflow, Delta lake) on two planted-signal
assets, logs and registers it, and each registered version, loaded from the registry by
name, turns raw bars into scores and positions."""

from __future__ import annotations

import os

import mlflow.pyfunc
import numpy as np
import pytest
from prefect.settings import temporary_settings
from prefect.testing.utilities import prefect_test_harness

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
    with (prefect_test_harness(server_startup_timeout=120),
          temporary_settings(updates={"results.local_storage_path": root / "results"})):
        from flows.factory_flow import run_factory
        from flows.runtime import shared_prefect_api

        with shared_prefect_api():
            summary = run_factory("ci")
    yield {"paths": paths, "bars": bars, "summary": summary}
    os.environ.clear()
    os.environ.update(saved)


def test_every_architecture_trains_in_the_ci_profile(zoo_home):
    summary = zoo_home["summary"]
    assert summary["failed"] == []
    assert len(summary["finished"]) == summary["n_specs"] == len(ARCHITECTURES)


def test_every_registered_architecture_serves_raw_bars_by_name(zoo_home):
    latest = Tracker(zoo_home["paths"]).latest_versions()
    assert sorted(name.split("-L")[0] for name in latest["model_name"]) == sorted(ARCHITECTURES)
    bars = zoo_home["bars"].tail(400 * 2).to_pandas()
    for name, version in zip(latest["model_name"], latest["version"], strict=True):
        served = mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(bars)
        assert list(served.columns) == ["score", "position"], name
        scored = served["position"].to_numpy()[-100:]
        assert np.isfinite(scored).all() and (np.abs(scored) <= 1).all(), name
