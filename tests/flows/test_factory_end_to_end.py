"""The ci profile end to end: ingest -> factory flow -> selection, through a real Prefect API
(prefect_test_harness), a real sqlite MLflow and real Delta tables in a temporary home."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import polars as pl
import pytest
import yaml
from mlflow.artifacts import download_artifacts
from prefect.settings import temporary_settings
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from factory.cli import app
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.paths import factory_paths
from factory.tracking import (
    ALIAS,
    AUDIT_EXPERIMENT,
    PRODUCTION,
    Tracker,
    load_production_model,
)
from feature_sets import build_features

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A FACTORY_HOME with planted-signal bars ingested, the ci factory run and one selection."""
    root = tmp_path_factory.mktemp("factory_home")
    saved = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL"):
        os.environ.pop(key, None)
    os.environ["FACTORY_HOME"] = str(root)
    bars = synthetic_bars(symbols=("AAA", "BBB"), n_bars=700, seed=11, signal=0.5)
    bars.write_csv(root / "bars.csv")
    result_storage = root / ".prefect" / "storage"  # this module's flows' results only
    with (prefect_test_harness(server_startup_timeout=120),
          temporary_settings(updates={"results.local_storage_path": result_storage})):
        from flows.factory_flow import run_factory
        from flows.ingest import ingest_flow
        from flows.runtime import shared_prefect_api
        from flows.selection import selection_flow

        with shared_prefect_api():
            ingest = ingest_flow(sources=[str(root / "bars.csv")])
            summary = run_factory("ci")
            first = selection_flow(profile="ci")
            second = selection_flow(profile="ci")
            rerun = run_factory("ci")
    yield {"root": root, "bars": bars, "ingest": ingest, "summary": summary,
           "first": first, "second": second, "rerun": rerun, "result_storage": result_storage}
    os.environ.clear()
    os.environ.update(saved)


def test_every_ci_config_trained_and_logged(home):
    summary = home["summary"]
    assert summary["failed"] == []
    assert len(summary["finished"]) == summary["n_specs"] == 4
    tracker = Tracker(factory_paths())
    latest = tracker.latest_versions()
    assert latest.height == 4
    assert set(latest["lake_version"]) == {str(home["ingest"]["version"])}
    assert latest["sharpe"].is_finite().all()


def test_models_learn_the_planted_signal_out_of_sample(home):
    latest = Tracker(factory_paths()).latest_versions()
    assert latest["directional_accuracy"].max() > 0.55
    assert latest["sharpe"].max() > 0.5


def test_selection_promotes_top_k_with_stage_and_alias(home):
    tracker = Tracker(factory_paths())
    production = tracker.production_models()
    assert production == sorted(home["first"]["chosen"])
    assert 2 <= len(production) <= 3
    for name in production:
        versions = tracker.client.search_model_versions(f"name='{name}'")
        assert [v.current_stage for v in versions] == [PRODUCTION]
        assert tracker.client.get_model_version_by_alias(name, ALIAS).current_stage == PRODUCTION
    assert "| rank |" in home["first"]["leaderboard"]


def test_selection_twice_changes_nothing_the_second_time(home):
    assert home["first"]["changes"]
    assert home["second"]["changes"] == []
    assert home["second"]["chosen"] == home["first"]["chosen"]


def test_selection_audit_records_live_under_factory_home(home):
    tracker = Tracker(factory_paths())
    audit = tracker.client.get_experiment_by_name(AUDIT_EXPERIMENT)
    assert audit.artifact_location.startswith(factory_paths().artifact_root.as_uri())
    runs = tracker.client.search_runs([audit.experiment_id])
    assert len(runs) == 2


def test_rerun_on_the_same_lake_version_skips_trained_specs(home):
    assert home["rerun"]["n_skipped"] == 4
    assert home["rerun"]["finished"] == []


def test_every_architecture_serves_a_features_frame(home):
    latest = Tracker(factory_paths()).latest_versions()
    assert {name.split("-")[0] for name in latest["model_name"]} == {"lstm", "lightgbm", "arima"}
    frame = build_features("raw_ohlcv", home["bars"].filter(pl.col("symbol") == "AAA"))
    for name, version in zip(latest["model_name"], latest["version"], strict=True):
        scores = mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(
            frame.drop("ts").to_pandas())
        assert len(scores) == frame.height, name
        assert np.isfinite(scores[-200:]).all(), name
        assert np.std(scores[-200:]) > 0, name


def test_production_stage_and_alias_uris_serve_the_same_version(home):
    name = home["first"]["chosen"][0]
    frame = build_features("raw_ohlcv", home["bars"].filter(pl.col("symbol") == "AAA"))
    features = frame.drop("ts").to_pandas()
    by_stage = mlflow.pyfunc.load_model(f"models:/{name}/Production").predict(features)
    by_alias = load_production_model(name).predict(features)
    np.testing.assert_array_equal(by_stage, by_alias)


def test_check_data_passes_the_lake_and_names_a_bad_file(home):
    assert CliRunner().invoke(app, ["check-data"]).exit_code == 0
    bad = home["bars"].with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(-1.0).otherwise(pl.col("volume"))
        .alias("volume"))
    path = home["root"] / "negative_volume.csv"
    bad.write_csv(path)
    result = CliRunner().invoke(app, ["check-data", str(path)])
    assert result.exit_code == 1
    assert "negative_volume.csv" in result.output and "'volume'" in result.output


def test_oos_returns_are_in_the_lake_with_version_and_run(home):
    table = Lake(factory_paths().lake).read_table("strategy_returns")
    latest = Tracker(factory_paths()).latest_versions()
    assert set(table["run_id"]) == set(latest["run_id"])
    assert set(table["lake_version"]) == {home["ingest"]["version"]}


def test_ingesting_a_corrupted_csv_fails_and_leaves_the_lake_unchanged(home):
    lake = Lake(factory_paths().lake)
    before_version, before = lake.version(), lake.read_bars()
    bad = home["bars"].with_columns(
        pl.when(pl.int_range(pl.len()) < 3).then(None).otherwise(pl.col("close")).alias("close"))
    path = home["root"] / "corrupted.csv"
    bad.write_csv(path)
    result = CliRunner().invoke(app, ["ingest", "--source", str(path)])
    assert result.exit_code != 0
    assert "corrupted.csv" in result.output and "close" in result.output
    assert "3 rows" in result.output
    assert lake.version() == before_version
    assert lake.read_bars().equals(before)


def test_ingesting_the_same_data_twice_adds_no_bars(home):
    lake = Lake(factory_paths().lake)
    version, height = lake.version(), lake.read_bars().height
    result = CliRunner().invoke(app, ["ingest", "--source", str(home["root"] / "bars.csv")])
    assert result.exit_code == 0, result.output
    assert "0 rows added" in result.output
    assert lake.version() == version
    assert lake.read_bars().height == height == home["bars"].height


def _is_pickle(path: Path) -> bool:
    """A pickle's name, or its first bytes: the PROTO opcode of pickle protocols 2 to 5."""
    head = path.read_bytes()[:2]
    return (path.suffix in {".pkl", ".pickle"} or "pickle" in path.name.lower()
            or (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5))


def test_registered_models_load_from_code_without_unpickling(home, tmp_path, monkeypatch):
    tracker = Tracker(factory_paths())
    everything = [p for p in factory_paths().artifact_root.rglob("*") if p.is_file()]
    assert everything and not [p for p in everything if _is_pickle(p)]
    for name, version in zip(*tracker.latest_versions().select("model_name", "version"),
                             strict=True):
        local = Path(download_artifacts(artifact_uri=f"models:/{name}/{version}",
                                        dst_path=str(tmp_path / name)))
        pyfunc = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
        assert pyfunc["model_code_path"].endswith("tracking_model.py"), name
        assert "python_model" not in pyfunc, name
        assert not [p for p in local.rglob("*") if p.is_file() and _is_pickle(p)], name
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    name = home["first"]["chosen"][0]
    frame = build_features("raw_ohlcv", home["bars"].filter(pl.col("symbol") == "AAA"))
    scores = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}").predict(
        frame.drop("ts").to_pandas())
    assert len(scores) == frame.height and np.isfinite(scores[-200:]).all()


def test_prefect_result_cache_holds_only_plain_json(home):
    files = [p for p in home["result_storage"].rglob("*") if p.is_file()]
    stored = [json.loads(path.read_bytes()) for path in files]  # no pickle: all JSON
    records = [r for r in stored if isinstance(r, dict) and "metadata" in r]
    assert len(records) == 2  # one per training chunk of the ci profile
    for record in records:
        serializer = record["metadata"]["serializer"]
        assert (serializer.get("type"), serializer.get("object_decoder", "?")) == ("json", None)
        directories = json.loads(record["result"])
        assert len(directories) == 2 and all(isinstance(d, str) for d in directories)


def test_run_from_the_cli_on_the_lake_prints_the_universe_first(home):
    result = CliRunner().invoke(app, ["run", "--profile", "ci", "--source", "lake",
                                      "--symbols", "AAA", "--symbols", "BBB"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("universe: 2 symbol(s) from lake v")
    assert "1d crypto bars" in lines[0]
    assert lines[1].strip().startswith("AAA: 700 bars")
    assert "already trained on this lake version" in result.output
