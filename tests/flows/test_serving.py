"""Serving: a registered, promoted model loaded by name turns raw bars into positions, and
is exactly the model the training saved: refit on all history after the walk-forward folds.

The home is trained and promoted through the core the factory flow runs (ingest into a
real Delta lake, `fit.run_chunk`, `Tracker.start_outcome`, the lake's strategy returns,
`finish_outcome`, then `Tracker.apply_stages`) on a real sqlite MLflow, without Prefect,
to stay small. The README's serving example is executed as written there, with only the
model name replaced.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl
import pytest
from mlflow import MlflowClient

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.data.strategy_returns import append_strategy_returns
from factory.data.universe import resolve_symbols
from factory.grid import expand
from factory.paths import PROJECT_ROOT, FactoryPaths, configure_environment
from factory.tracking import (
    ALIAS,
    EXPERIMENT,
    EXPERIMENT_KIND_TAG,
    TRAINING_KIND,
    Tracker,
    load_production_model,
)
from factory.tracking_stages import PRODUCTION, StageTarget
from factory.training.datasets import DatasetRef, cache_bars, cache_features
from factory.training.fit import run_chunk
from factory.training.predictor import Predictor

pytestmark = pytest.mark.slow

README = PROJECT_ROOT / "README.md"
START, END = "<!-- serving-example -->", "<!-- /serving-example -->"
MODEL_URI = re.compile(r"models:/[^\"'@]+@production")
HOME_ENV = ("FACTORY_HOME", "MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A home whose smoke-profile models are trained on two planted-signal assets and all promoted.

    Its experiment exists before the first factory run, without a kind, as in homes made
    before experiments had one.
    """
    saved = dict(os.environ)
    for key in HOME_ENV:
        os.environ.pop(key, None)
    root = tmp_path_factory.mktemp("serving_home")
    os.environ["FACTORY_HOME"] = str(root)
    paths = configure_environment()
    MlflowClient(paths.tracking_uri).create_experiment(
        EXPERIMENT, artifact_location=(paths.artifact_root / EXPERIMENT).as_uri())
    lake = Lake(paths.lake)
    bars = synthetic_bars(symbols=("AAA", "BBB"), n_bars=500, seed=7, signal=0.5)
    lake.ingest_bars(bars, "synthetic")
    config = load_config("smoke")
    symbols, version = resolve_symbols(config, lake), lake.version()
    ref = DatasetRef.for_lake(paths.cache, lake, version, symbols)
    cache_bars(lake, ref)
    specs = expand(config, symbols).specs
    for feature_set in {s.feature_set for s in specs}:
        cache_features(ref, feature_set, config.features[feature_set].params)
    tracker = Tracker(paths)
    for outcome in run_chunk(specs, ref, paths.runs):
        assert outcome.status == "FINISHED", outcome.error
        run_id = tracker.start_outcome(outcome, version, "test", "smoke")
        append_strategy_returns(lake, outcome.portfolio, run_id=run_id, spec_id=outcome.spec.id,
                                model_name=outcome.spec.model_name, lake_version=version)
        tracker.finish_outcome(run_id, "FINISHED")
    names = sorted(tracker.latest_versions()["model_name"])
    tracker.apply_stages({name: StageTarget(PRODUCTION, "serving test") for name in names},
                         "20260101T000000Z")
    bars.write_csv(root / "bars.csv")
    yield {"paths": paths, "bars": lake.read_bars(), "names": names}
    os.environ.clear()
    os.environ.update(saved)


def _readme_example() -> str:
    """The python block between the serving-example markers of README.md."""
    text = README.read_text()
    if START not in text or END not in text:
        pytest.fail(f"{README} has no serving example between {START} and {END}")
    block = text.split(START, 1)[1].split(END, 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", block, flags=re.DOTALL)
    return code


def _meta(paths: FactoryPaths, name: str) -> dict:
    """The meta.json of the production version of ``name``, from its training folder."""
    version = Tracker(paths).client.get_model_version_by_alias(name, ALIAS)
    return json.loads((paths.runs / version.tags["spec_id"] / f"v{version.tags['lake_version']}"
                       / "meta.json").read_text())


def test_the_readme_example_turns_raw_bars_into_positions(served, monkeypatch):
    code = _readme_example()
    assert len(code.strip().splitlines()) <= 5 and len(MODEL_URI.findall(code)) == 1
    monkeypatch.chdir(served["paths"].home)  # where `make demo` leaves mlflow/ and bars.csv
    try:
        for name in served["names"]:
            namespace: dict = {}
            exec(compile(MODEL_URI.sub(f"models:/{name}@production", code), str(README),
                         "exec"), namespace)
            bars, signals = namespace["bars"], namespace["signals"]
            assert list(signals.columns) == ["score", "position"] and len(signals) == len(bars)
            warm_up = _meta(served["paths"], name)["min_bars"] - 1
            for symbol in ("AAA", "BBB"):
                one = signals[bars["symbol"] == symbol]
                assert one.iloc[:warm_up].isna().all().all(), name
                scored = one.iloc[warm_up:]
                assert np.isfinite(scored.to_numpy()).all(), name
                assert scored["position"].abs().max() <= 1.0, name
    finally:
        mlflow.set_tracking_uri(served["paths"].tracking_uri)


def test_the_registry_serves_exactly_the_saved_refit_model(served):
    """Loaded by alias from the registry, each model scores raw bars exactly as the model
    the training saved (refit on all history through its last bar) does."""
    paths, bars = served["paths"], served["bars"]
    for name in served["names"]:
        version = MlflowClient(paths.tracking_uri).get_model_version_by_alias(name, ALIAS)
        saved = Predictor(paths.runs / version.tags["spec_id"]
                          / f"v{version.tags['lake_version']}").predict_bars(bars)
        output = load_production_model(name).predict(bars.to_pandas())
        assert version.tags["trained_through"] == str(bars["ts"].max()).replace(" ", "T"), name
        np.testing.assert_array_equal(output["score"].to_numpy(), saved["score"].to_numpy(),
                                      err_msg=name)
        np.testing.assert_array_equal(output["position"].to_numpy(),
                                      saved["position"].to_numpy(), err_msg=name)


def test_the_output_keeps_the_inputs_index(served):
    name = served["names"][0]
    model = load_production_model(name)
    bbb = served["bars"].filter(pl.col("symbol") == "BBB")
    frame = bbb.to_pandas().set_index(pd.RangeIndex(1000, 1000 + bbb.height))
    output = model.predict(frame)
    assert output.index.equals(frame.index)
    pd.testing.assert_frame_equal(model.predict(bbb.to_pandas()).set_index(frame.index), output)


def test_an_experiment_made_before_kinds_opens_on_the_training_runs_view(served):
    client = Tracker(served["paths"]).client
    assert client.get_experiment_by_name(EXPERIMENT).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND


def test_loading_a_model_imports_only_its_own_library(served):
    """What a fresh process imports to load a LightGBM and an ARIMA model (load time)."""
    loaded = {}
    for name in served["names"]:
        if name.startswith(("lightgbm", "arima")):
            script = ("import sys, mlflow; mlflow.pyfunc.load_model(sys.argv[1]); "
                      "print(sorted({m.split('.')[0] for m in sys.modules} & "
                      "{'torch', 'lightning', 'lightgbm', 'statsmodels'}))")
            result = subprocess.run(
                [sys.executable, "-c", script, f"models:/{name}@{ALIAS}"], check=True,
                capture_output=True, text=True, cwd=served["paths"].home,
                env={**os.environ, "MLFLOW_TRACKING_URI": served["paths"].tracking_uri})
            loaded[name.split("-")[0]] = result.stdout.strip().splitlines()[-1]
    assert loaded == {"lightgbm": "['lightgbm']", "arima": "['statsmodels']"}


def test_too_few_bars_are_refused_naming_the_symbol(served):
    model = load_production_model(served["names"][0])
    few = served["bars"].filter(pl.col("symbol") == "AAA").head(5)
    with pytest.raises(ValueError, match="symbol 'AAA': 5 bars, but this model needs"):
        model.predict(few.to_pandas())
