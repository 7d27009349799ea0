"""The at-scale tracking backend: MLflow's tracking store and registry on a real PostgreSQL
(127.0.0.1:5432, trust auth). Each test run gets a database of its own, dropped afterwards
(the ``postgres_url`` fixture). Skipped, saying why, where no PostgreSQL answers."""

from __future__ import annotations

import numpy as np

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.data.strategy_returns import append_strategy_returns
from factory.grid import expand
from factory.paths import FactoryPaths
from factory.selection_run import decide, record
from factory.tracking import PRODUCTION, Tracker, load_production_model
from factory.training.datasets import DatasetRef, cache_bars, cache_features
from factory.training.fit import run_chunk
from tests.pg import sqlalchemy_url


def test_tracking_registry_and_promotion_on_postgresql(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlalchemy_url(postgres_url, "psycopg"))
    paths = FactoryPaths(tmp_path)
    lake = Lake(paths.lake)
    bars = synthetic_bars(symbols=("AAA",), n_bars=500, seed=4, signal=0.5)
    lake.ingest_bars(bars, "syn")
    spec = next(s for s in expand(load_config("smoke"), ("AAA",)).specs if s.arch == "lightgbm")
    ref = DatasetRef.for_lake(paths.cache, lake, lake.version(), ("AAA",))
    cache_bars(lake, ref)
    cache_features(ref, spec.feature_set, spec.feature_params)
    [outcome] = run_chunk([spec], ref, paths.runs)

    tracker = Tracker(paths)
    run_id = tracker.start_outcome(outcome, lake.version(), "test", "smoke")
    append_strategy_returns(lake, outcome.portfolio, run_id=run_id, spec_id=spec.id,
                            model_name=spec.model_name, lake_version=lake.version())
    tracker.finish_outcome(run_id, outcome.status)

    assert tracker.client.tracking_uri.startswith("postgresql")
    assert tracker.client.get_run(run_id).info.artifact_uri.startswith(
        paths.artifact_root.as_uri())
    assert tracker.trained_spec_ids(lake.version()) == {spec.id}
    assert tracker.trial_sharpes("AAA").tolist() == [outcome.metrics["sharpe"]]
    policy = load_config("smoke").selection  # the store is under test here, not the gates:
    policy = policy.model_copy(update={"gates": policy.gates.model_copy(
        update={"min_deflated_sharpe": None})})
    decision = decide(paths, "smoke", policy, tracker)
    assert decision.result.production == [spec.model_name], decision.result.headline
    changes = record(paths, decision, tracker)
    assert [(c.model_name, c.to_stage) for c in changes] == [(spec.model_name, PRODUCTION)]
    assert record(paths, decide(paths, "smoke", policy, tracker), tracker) == []
    served = load_production_model(spec.model_name).predict(bars.drop("symbol").to_pandas())
    positions = served["position"].to_numpy()[-100:]
    assert np.isfinite(positions).all() and (np.abs(positions) <= 1).all()
