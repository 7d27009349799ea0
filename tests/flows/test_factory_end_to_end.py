"""The smoke profile end to end: ingest -> factory flow -> selection, through a real Prefect API
(prefect_test_harness), a real sqlite MLflow and real Delta tables in a temporary home."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import polars as pl
import pytest
import yaml
from mlflow.artifacts import download_artifacts
from mlflow.models import Model
from prefect.settings import temporary_settings
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from factory.cli import app
from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.grid import LabelCollisionError, RunSpec, expand
from factory.paths import factory_paths
from factory.selection_run import AUDIT_TABLE as SELECTION_AUDIT
from factory.tracking import (
    ALIAS,
    AUDIT_EXPERIMENT,
    EXPERIMENT,
    EXPERIMENT_KIND_TAG,
    NOTE_TAG,
    PRODUCTION,
    TRAINING_KIND,
    Tracker,
    load_production_model,
)
from factory.tracking_registry import ModelNameTakenError, ensure_registered_model
from factory.training.fit import SpecOutcome

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A FACTORY_HOME with planted-signal bars ingested, the smoke factory run and one selection."""
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
            summary = run_factory("smoke")
            first = selection_flow(profile="smoke")
            second = selection_flow(profile="smoke")
            rerun = run_factory("smoke")
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


def test_every_promotion_cleared_the_gates_and_every_stage_says_why(home):
    audit = Lake(factory_paths().lake).read_table(SELECTION_AUDIT)
    assert audit["decided_at"].n_unique() == 2  # both selections are in the audit
    first = audit.filter(pl.col("decided_at") == audit["decided_at"].max())
    assert first.height == 4 and first["n_trials"].unique().to_list() == [4]
    production = first.filter(pl.col("stage_to") == PRODUCTION)
    assert sorted(production["model_name"]) == sorted(home["first"]["chosen"])
    assert (production["deflated_sharpe"] >= 0.95).all()
    assert (production["gates_failed"] == "").all()
    assert production["weight"].sum() == pytest.approx(1.0)
    others = first.filter(pl.col("stage_to") != PRODUCTION)
    assert (others["reason"].str.len_chars() > 0).all()
    tracker = Tracker(factory_paths())
    for row in first.iter_rows(named=True):
        version = tracker.client.get_model_version(row["model_name"], row["version"])
        assert version.current_stage == row["stage_to"] or row["stage_to"] == "None"
        assert version.tags["selection.reason"] == row["reason"]
        alias = {"Production": "production", "Staging": "staging"}.get(row["stage_to"])
        if alias:
            assert str(tracker.client.get_model_version_by_alias(
                row["model_name"], alias).version) == row["version"]


def test_the_selection_run_carries_the_leaderboard_as_html_and_png(home):
    tracker = Tracker(factory_paths())
    experiment = tracker.client.get_experiment_by_name(AUDIT_EXPERIMENT)
    run = tracker.client.search_runs([experiment.experiment_id])[0]
    names = {a.path for a in tracker.client.list_artifacts(run.info.run_id)}
    assert {"leaderboard.html", "leaderboard.png", "leaderboard.csv",
            "selection.json"} <= names
    assert run.data.metrics["n_candidates"] == 4 and run.data.metrics["max_trials"] == 4
    assert run.data.tags["mlflow.note.content"] == home["second"]["headline"]


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


def test_every_architecture_serves_raw_bars(home):
    latest = Tracker(factory_paths()).latest_versions()
    assert {name.split("-")[0] for name in latest["model_name"]} == {"lstm", "lightgbm", "arima"}
    bars = home["bars"].filter(pl.col("symbol") == "AAA").to_pandas()
    for name, version in zip(latest["model_name"], latest["version"], strict=True):
        served = mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(bars)
        assert list(served.columns) == ["score", "position"], name
        assert len(served) == len(bars), name
        assert np.isfinite(served["score"].to_numpy()[-200:]).all(), name
        assert np.std(served["score"].to_numpy()[-200:]) > 0, name


def test_production_stage_and_alias_uris_serve_the_same_version(home):
    name = home["first"]["chosen"][0]
    bars = home["bars"].to_pandas()
    by_stage = mlflow.pyfunc.load_model(f"models:/{name}/Production").predict(bars)
    by_alias = load_production_model(name).predict(bars)
    assert by_stage.equals(by_alias)


def test_check_data_passes_the_lake_and_names_a_bad_file(home):
    assert CliRunner().invoke(app, ["check-data", "--no-packaged"]).exit_code == 0
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
    bars = home["bars"].filter(pl.col("symbol") == "AAA").to_pandas()
    served = mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}").predict(bars)
    assert len(served) == len(bars) and np.isfinite(served["score"].to_numpy()[-200:]).all()


def test_prefect_result_cache_holds_only_plain_json(home):
    files = [p for p in home["result_storage"].rglob("*") if p.is_file()]
    stored = [json.loads(path.read_bytes()) for path in files]  # no pickle: all JSON
    records = [r for r in stored if isinstance(r, dict) and "metadata" in r]
    assert len(records) == 2  # one per training chunk of the smoke profile
    for record in records:
        serializer = record["metadata"]["serializer"]
        assert (serializer.get("type"), serializer.get("object_decoder", "?")) == ("json", None)
        directories = json.loads(record["result"])
        assert len(directories) == 2 and all(isinstance(d, str) for d in directories)


def test_run_from_the_cli_on_the_lake_prints_the_universe_first(home):
    result = CliRunner().invoke(app, ["run", "--profile", "smoke", "--source", "lake",
                                      "--symbols", "AAA", "--symbols", "BBB"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("universe: 2 symbol(s) from lake v")
    assert "1d crypto bars" in lines[0]
    assert lines[1].strip().startswith("AAA: 700 bars")
    assert "already trained on this lake version" in result.output


LABEL = re.compile(r"^(lstm|lightgbm|arima)-L\d+-[a-z_]+-[0-9a-f]{10}$")


def _ci_specs() -> dict[str, RunSpec]:
    """The smoke profile's specs on the module's universe, by spec id."""
    return {s.id: s for s in expand(load_config("smoke"), ("AAA", "BBB")).specs}


def test_registered_models_are_named_by_their_readable_labels(home):
    tracker = Tracker(factory_paths())
    latest = tracker.latest_versions()
    specs = _ci_specs()
    assert sorted(latest["model_name"]) == sorted(s.label for s in specs.values())
    for name, spec_id, version in latest.select("model_name", "spec_id", "version").iter_rows():
        assert LABEL.match(name) and name == specs[spec_id].label
        assert tracker.client.get_registered_model(name).tags["spec_id"] == spec_id
        assert tracker.client.get_model_version(name, version).tags["spec_id"] == spec_id


def test_the_leaderboards_name_what_models_uris_load(home):
    latest = Tracker(factory_paths()).latest_versions()
    result = CliRunner().invoke(app, ["leaderboard", "--profile", "smoke"])
    assert result.exit_code == 0, result.output
    markdown = home["first"]["leaderboard"]
    assert markdown.startswith("**") and "\n| rank | model | stage |" in markdown
    for name in latest["model_name"]:
        assert name in result.output
        assert f"| {name} |" in markdown
    production = [line.split(" | ")[1] for line in markdown.splitlines()
                  if f"| {PRODUCTION} |" in line]
    assert sorted(production) == sorted(home["first"]["chosen"])
    for name in production:
        assert load_production_model(name).predict(home["bars"].to_pandas()).shape[1] == 2


def test_label_collisions_are_refused_by_the_grid_and_the_registry(home, monkeypatch):
    tracker = Tracker(factory_paths())
    spec = next(iter(_ci_specs().values()))
    other = spec.model_copy(update={"seed": spec.seed + 1})
    tracker.client.create_registered_model(other.label, tags={"spec_id": spec.id})
    try:
        with pytest.raises(ModelNameTakenError, match=spec.id):
            ensure_registered_model(tracker.client, SpecOutcome(spec=other, status="FINISHED"))
    finally:
        tracker.client.delete_registered_model(other.label)
    monkeypatch.setattr(RunSpec, "short_id", property(lambda self: "0" * 10))
    with pytest.raises(LabelCollisionError, match="share the label"):
        expand(load_config("demo"), ("AAA",))  # demo: several lightgbm configs per cell


def test_experiments_open_on_the_training_runs_view(home):
    client = Tracker(factory_paths()).client
    for name in (EXPERIMENT, AUDIT_EXPERIMENT):
        assert client.get_experiment_by_name(name).tags[EXPERIMENT_KIND_TAG] == TRAINING_KIND


def _finished_runs() -> list:
    tracker = Tracker(factory_paths())
    return [tracker.client.get_run(run_id) for run_id in tracker.latest_versions()["run_id"]]


def test_each_run_describes_its_config_and_data(home):
    specs = _ci_specs()
    for run in _finished_runs():
        spec, note = specs[run.data.tags["spec_id"]], run.data.tags[NOTE_TAG]
        assert f"| architecture | {spec.arch} |" in note
        assert f"| lookback | {spec.lookback} bars |" in note
        assert f"| feature set | {spec.feature_set} (volume_window=20) |" in note
        for key, value in spec.hparams.items():
            assert f"{key}={value}" in note
        assert f"lake version {home['ingest']['version']}" in note
        assert "AAA, BBB, 1d bars" in note and spec.id in note


def test_each_version_carries_description_signature_example_and_oos_metrics(home, tmp_path):
    tracker = Tracker(factory_paths())
    bars = home["bars"].filter(pl.col("symbol") == "AAA")
    for name, version, run_id in tracker.latest_versions().select(
            "model_name", "version", "run_id").iter_rows():
        mv = tracker.client.get_model_version(name, version)
        metrics = tracker.client.get_run(run_id).data.metrics
        assert name in mv.description and "Sharpe" in mv.description
        for key in ("sharpe", "buy_and_hold_sharpe", "max_drawdown", "win_rate"):
            assert mv.tags[key] == f"{metrics[key]:.4f}", (name, key)
        assert mv.tags["n_obs"] == str(int(metrics["n_obs"]))
        local = download_artifacts(artifact_uri=f"models:/{name}/{version}",
                                   dst_path=str(tmp_path / name))
        logged = Model.load(local)
        assert logged.signature.inputs.input_names() == [
            "ts", "open", "high", "low", "close", "volume", "symbol"]
        assert logged.signature.outputs.input_names() == ["score", "position"]
        example = logged.load_input_example(local)
        assert set(example["symbol"]) == {"AAA"}
        np.testing.assert_array_equal(example["close"], bars["close"].tail(len(example)))
        served = mlflow.pyfunc.load_model(local).predict(example)
        assert served["position"].notna().sum() == 10, name


def test_each_run_logs_the_lake_bars_it_read_as_a_dataset(home):
    lake = factory_paths().lake
    digests = set()
    for run in _finished_runs():
        [dataset_input] = run.inputs.dataset_inputs
        dataset = dataset_input.dataset
        assert (dataset.name, dataset.source_type) == ("bars", "delta_table")
        assert json.loads(dataset.source) == {"path": str(lake / "bars"),
                                              "delta_table_version": home["ingest"]["version"]}
        assert json.loads(dataset.profile)["num_rows"] == home["bars"].height
        assert [(t.key, t.value) for t in dataset_input.tags] == [
            ("mlflow.data.context", "training")]
        digests.add(dataset.digest)
    assert len(digests) == 1


def test_per_fold_metrics_are_logged_as_steps(home):
    tracker = Tracker(factory_paths())
    assert "fold/sharpe" not in tracker.latest_versions().columns  # not a candidate metric
    client = tracker.client
    for run in _finished_runs():
        sharpe = client.get_metric_history(run.info.run_id, "fold/sharpe")
        bars = client.get_metric_history(run.info.run_id, "fold/n_oos_bars")
        assert sorted(m.step for m in sharpe) == sorted(m.step for m in bars) == [0, 1]
        assert sum(m.value for m in bars) == run.data.metrics["n_obs"]
