"""The Optuna search's core: spaces by the grid's rules, trials trained, pruned and resumed.

Real training (``fit.evaluate_spec``) of two cheap architectures on planted-signal bars in a
temporary feature cache, real Optuna studies in a temporary sqlite file; no Prefect, no MLflow.
"""

from __future__ import annotations

import itertools
import json

import optuna
import pytest
from typer.testing import CliRunner

from factory.cli import app
from factory.config import ConfigPattern, ExclusionRule, load_config
from factory.data.sources import synthetic_bars
from factory.grid import expand
from factory.search import build_space, open_storage, plan_studies, run_study, study_name
from factory.search.storage import STORAGE_ENV
from factory.search.study import trial_dir
from factory.training.datasets import DatasetRef, cache_features
from factory.training.outcomes import load_outcome
from factory.training.predictor import Predictor

SYMBOLS = ("AAA", "BBB")


class AlwaysPrune(optuna.pruners.BasePruner):
    """Prunes every trial at the first fold it reports."""

    def prune(self, study, trial) -> bool:
        return True


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A feature cache of two planted-signal assets, the smoke config and a study storage."""
    root = tmp_path_factory.mktemp("search")
    ref = DatasetRef(root / "cache", 1, SYMBOLS, 252.0, "1d")
    ref.bars_path().parent.mkdir(parents=True)
    synthetic_bars(symbols=SYMBOLS, n_bars=500, seed=3, signal=0.5).write_parquet(ref.bars_path())
    config = load_config("smoke")
    cache_features(ref, "raw_ohlcv", config.features["raw_ohlcv"].params)
    storage = f"sqlite:///{root / 'optuna.db'}"
    open_storage(storage)
    return {"ref": ref, "config": config, "storage": storage, "runs": root / "runs"}


def _plan(data, arch: str, n_trials: int):
    [plan] = [p for p in plan_studies(data["config"], SYMBOLS, None, 1, {}, data["storage"],
                                      n_trials) if p.space.arch == arch]
    return plan


def test_every_draw_is_a_grid_config_or_the_grid_s_reason():
    config = load_config("smoke")
    space = build_space(config, "lightgbm", SYMBOLS)
    drawn = set()
    for values in itertools.product(*space.choices().values()):
        spec, reason = space.spec_for(dict(zip(space.choices(), values, strict=True)))
        assert spec is not None and reason == ""
        drawn.add(spec.id)
    assert drawn == {s.id for s in space.allowed} and space.size == 8
    # the search axes replace the grid's, so the smoke grid's own lightgbm configs are not in it
    assert all(s.arch == "lightgbm" and s.hparams["n_estimators"] == 30 for s in space.allowed)
    arima = build_space(config, "arima", SYMBOLS)
    spec, reason = arima.spec_for({"lookback": 14, "feature_set": "raw_ohlcv",
                                   "hp.order": json.dumps([1, 0, 0])})
    assert spec is None and "whole history" in reason
    spec, _ = arima.spec_for({"lookback": 7, "feature_set": "raw_ohlcv", "hp.order": "[1, 0, 0]"})
    assert spec is not None and spec.hparams["order"] == [1, 0, 0]
    assert spec.id in {s.id for s in expand(config, SYMBOLS).specs}  # the grid's own spec


def test_the_space_is_the_full_product_whatever_the_grid_s_design():
    config = load_config("smoke")
    entry = config.search.architectures["lightgbm"]
    wide = entry.model_copy(update={"design": "orthogonal", "hparams": {
        **entry.hparams, "min_child_samples": [10, 20]}, "fixed": {
        k: v for k, v in entry.fixed.items() if k != "min_child_samples"}})
    search = config.search.model_copy(update={"architectures": {"lightgbm": wide}})
    space = build_space(config.model_copy(update={"search": search}), "lightgbm", SYMBOLS)
    assert space.size == space.product == 2 * 2 * 2 * 2  # lookbacks x three 2-level axes


def test_rule_kinds_choose_the_exclusion_rules_a_draw_obeys():
    config = load_config("smoke")
    rule = ExclusionRule(name="no-lightgbm-on-7-bars", kind="feasibility",
                         reason="a test rule: too costly", where=ConfigPattern(
                             architectures=("lightgbm",), lookbacks=(7,)))
    grid = config.grid.model_copy(update={"exclusions": (*config.grid.exclusions, rule)})
    obeying = build_space(config.model_copy(update={"grid": grid}), "lightgbm", SYMBOLS)
    search = config.search.model_copy(update={"rule_kinds": ("capability",)})
    ignoring = build_space(config.model_copy(update={"grid": grid, "search": search}),
                           "lightgbm", SYMBOLS)
    assert (obeying.size, ignoring.size) == (4, 8)
    point = {"lookback": 7, "feature_set": "raw_ohlcv", "hp.learning_rate": 0.1,
             "hp.num_leaves": 7}
    assert obeying.spec_for(point) == (None, "a test rule: too costly")
    assert ignoring.spec_for(point)[0].lookback == 7


def test_a_study_trains_grid_configs_once_refits_the_best_and_resumes(data):
    plan = _plan(data, "lightgbm", 4)
    assert plan.name == study_name(plan.space, 1, {}) and plan.name.startswith("lightgbm-lake-v1-")
    first = run_study(plan, data["ref"], data["runs"])
    assert len(first.new) == 4 and first.n_trials_total >= 4
    allowed = {s.id for s in plan.space.allowed}
    for record in first.trials:
        outcome = load_outcome(data["runs"] / record.outcome)
        assert outcome.spec.id == record.spec_id in allowed
        assert outcome.model_dir is None and outcome.oos is not None
    [refit] = first.refits
    assert refit.number == first.best[0] and refit.error is None
    best = max((r for r in first.trials if r.state == "COMPLETE"), key=lambda r: r.value)
    assert refit.number == best.number
    finished = load_outcome(data["runs"] / refit.outcome)
    assert finished.status == "FINISHED" and finished.trained_through
    assert finished.metrics["sharpe"] == pytest.approx(best.value)
    assert Predictor(finished.model_dir).meta["spec_id"] == best.spec_id

    # a worker killed mid-trial left one RUNNING: the resumed study fails it, trains 4 more
    optuna.load_study(study_name=plan.name, storage=plan.storage).ask()
    second = run_study(plan, data["ref"], data["runs"], registered={refit.number})
    study = optuna.load_study(study_name=plan.name, storage=plan.storage)
    assert study.trials[first.n_trials_total].state == optuna.trial.TrialState.FAIL
    assert len(second.new) == 4 and min(second.new) > max(first.new)
    assert {r.spec_id for r in second.trials} == allowed  # the space is exhausted, each once
    assert len(second.trials) == 8
    assert all(r.number != refit.number for r in second.refits)  # registered: not refit again
    third = run_study(plan, data["ref"], data["runs"])
    assert third.new == [] and third.draws == 0


def test_a_pruned_trial_keeps_the_folds_it_ran(data):
    plan = _plan(data, "logistic_regression", 2)
    report = run_study(plan, data["ref"], data["runs"], pruner=AlwaysPrune())
    assert len(report.new) == 2 and report.refits == []
    study = optuna.load_study(study_name=plan.name, storage=plan.storage)
    for record in report.trials:
        assert record.state == "PRUNED" and record.folds == 1 < plan.space.config.evaluation.n_folds
        outcome = load_outcome(trial_dir(data["runs"], plan.name, record.number))
        assert len(outcome.fold_metrics) == 1 and outcome.metrics["n_folds"] == 1
        assert record.value == pytest.approx(outcome.metrics["sharpe"])
        assert list(study.trials[record.number].intermediate_values) == [0]


def test_the_cli_prints_each_study_s_space_and_refuses_what_does_not_apply(monkeypatch):
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["run", "--profile", "smoke", "--search", "optuna",
                                 "--dry-run", "--trials", "5"])
    assert result.exit_code == 0, result.output
    assert "lightgbm: 8 configs in the space" in result.output
    assert "logistic_regression: 6 configs in the space" in result.output
    assert result.output.count("up to 5 trials per run, the best 1 registered") == 2
    assert "Optuna storage: sqlite:///" in result.output and "optuna.db" in result.output
    for args, message in ((["--search", "random"], "--search random: expected grid or optuna"),
                          (["--trials", "3"], "--trials applies to --search optuna"),
                          (["--search", "optuna", "--force"], "--force and --dask apply")):
        result = runner.invoke(app, ["run", "--profile", "smoke", *args])
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


def test_a_draw_the_grid_excludes_is_pruned_untrained_with_the_reason(data):
    config = data["config"]
    grid = config.grid.model_copy(update={"feature_sets": ("raw_ohlcv", "sentiment")})
    missing = {"sentiment": "the lake has no sentiment table"}
    [plan] = [p for p in plan_studies(config.model_copy(update={"grid": grid}), SYMBOLS,
                                      missing, 1, {}, data["storage"], 3)
              if p.space.arch == "logistic_regression"]
    assert plan.space.size == 6 and plan.space.product == 12
    report = run_study(plan, data["ref"], data["runs"])
    study = optuna.load_study(study_name=plan.name, storage=plan.storage)
    excluded = [t for t in study.trials if "excluded" in t.user_attrs]
    assert excluded and all(t.state == optuna.trial.TrialState.PRUNED for t in excluded)
    assert all("the lake has no sentiment table" in t.user_attrs["excluded"] for t in excluded)
    assert all(t.params["feature_set"] == "sentiment" for t in excluded)
    assert len(report.new) == 3 and {r.number for r in report.trials}.isdisjoint(
        t.number for t in excluded)
