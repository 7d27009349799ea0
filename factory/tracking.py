"""The module that imports mlflow: runs, artifacts, the registry, stages and aliases.

(``factory/tracking_registry.py``, what a run and a model version carry, and
``factory/tracking_model.py``, the models-from-code file MLflow executes when it loads a
model, are the other importers.) One experiment, of the "machine learning" kind, holds every
run. Each RunSpec is its own registered model, named by its readable label
(``<arch>-L<lookback>-<feature set>-<short id>``, the full spec id a tag); each training logs
a new version whose pyfunc flavour turns raw bars into scores and positions
(``Predictor.predict_bars``). Promotion sets the "Production" stage (deprecated in MLflow 3
but still what the UI shows) AND the ``production`` alias (the supported mechanism).

A run carries its config as description, its metrics over all folds (step 0) and per fold
(``fold/<metric>``, step = fold index, so the run page draws them as curves), and the lake's
bars it read as the dataset input ``bars``.

Logging is crash-safe: a run is created RUNNING, gets its params, metrics, artifacts and
registered version (and the caller appends its returns to the lake), and only then is
marked FINISHED or FAILED. A run a killed command left RUNNING is failed, and its model
versions deleted, by :meth:`Tracker.fail_orphaned_runs` at the start of the next factory
run, which then trains (or re-logs) the spec again.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from factory.grid import RunSpec
from factory.home import check_home_is_its_own
from factory.paths import FactoryPaths
from factory.tracking_registry import (
    MANAGED_TAG,
    bars_dataset_input,
    input_example,
    log_and_register,
    model_meta,
    run_description,
)
from factory.tracking_stages import (
    PRODUCTION,
    StageChange,
    StageTarget,
    apply_stages,
    log_selection_run,
)
from factory.training.fit import EVALUATED, SpecOutcome
from factory.training.plots import equity_drawdown_png
from factory.training.predictor import Predictor

EXPERIMENT = "model-factory"
AUDIT_EXPERIMENT = "model-factory-selection"
TRADING_EXPERIMENT = "model-factory-trading"
"""Backtests and portfolios of the factory's models (``factory backtest``/``portfolio``)."""
ALIAS = "production"
FAILURE_TAG = "factory.failure"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_KIND = "custom_model_development"
"""The kind the MLflow 3 UI shows as "Machine learning": the runs table, metrics and models,
rather than the GenAI traces view an experiment without a kind may open on."""
NOTE_TAG = "mlflow.note.content"
FOLD_PREFIX = "fold/"
"""Per-fold metrics are logged as ``fold/<metric>`` with step = fold index."""
STUDY_TAG, TRIAL_TAG, TRIAL_STATE_TAG = "optuna.study", "optuna.trial", "optuna.state"
REGISTERED_TAG, STUDY_ROLE_TAG, PARENT_TAG = ("optuna.registered", "optuna.role",
                                              "mlflow.parentRunId")
"""``factory run --search optuna``: a trial's run carries its study, number and Optuna state,
``optuna.registered`` once its refit model is registered, and its study's run as parent; the
study's own run (role ``study``) is no trial: it has no managed tag, so no query counts it."""


# Registration chatter would bury the training progress display.
logging.getLogger("mlflow").setLevel(logging.ERROR)


def _metrics(outcome: SpecOutcome) -> list[Metric]:
    """Overall metrics at step 0, and ``fold/<name>`` of each fold at step = fold index."""
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in outcome.metrics.items()
               if np.isfinite(v)]
    for fold in outcome.fold_metrics:
        step = int(fold["fold"])
        metrics += [Metric(f"{FOLD_PREFIX}{k}", float(v), now, step) for k, v in fold.items()
                    if k != "fold" and np.isfinite(v)]
    return metrics


def _flat_params(outcome: SpecOutcome) -> dict[str, str]:
    spec = outcome.spec
    params = {"arch": spec.arch, "lookback": spec.lookback, "feature_set": spec.feature_set,
              "seed": spec.seed, "symbols": ",".join(spec.symbols)}
    params |= {f"hp.{k}": v for k, v in spec.hparams.items()}
    params |= {f"fs.{k}": v for k, v in spec.feature_params.items()}
    params |= {f"eval.{k}": v for k, v in spec.evaluation.model_dump().items()}
    params |= {f"data.{k}": v for k, v in (("start", spec.data_start), ("end", spec.data_end))
               if v is not None}
    return {k: str(v)[:500] for k, v in params.items()}


class Tracker:
    """MLflow tracking and registry for one FACTORY_HOME."""

    def __init__(self, paths: FactoryPaths) -> None:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or paths.tracking_uri
        # An `mlflow server` decides where artifacts go; a database store used directly
        # (sqlite, PostgreSQL) would default to ./mlruns, so give it FACTORY_HOME's folder.
        served = uri.startswith(("http://", "https://"))
        if uri == paths.tracking_uri:  # the home's own sqlite store records absolute paths
            check_home_is_its_own(paths)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        self.client = MlflowClient(uri, uri)
        self._artifact_root = None if served else paths.artifact_root
        self._lake_root = paths.lake
        self._bars: dict[tuple[int, tuple[str, ...]], pl.DataFrame] = {}
        self.experiment_id = self._experiment(EXPERIMENT)

    def _experiment(self, name: str) -> str:
        """Id of experiment ``name`` of the training kind (created, or its kind set, here).

        A new experiment gets an explicit artifact location unless a server decides it.
        """
        experiment = self.client.get_experiment_by_name(name)
        if experiment:
            if experiment.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
                self.client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG,
                                               TRAINING_KIND)
            return experiment.experiment_id
        location = (self._artifact_root / name).as_uri() if self._artifact_root else None
        return self.client.create_experiment(name, artifact_location=location,
                                             tags={EXPERIMENT_KIND_TAG: TRAINING_KIND})

    def _training_bars(self, spec: RunSpec, lake_version: int) -> pl.DataFrame:
        """The lake's bars of ``spec``'s universe and span at ``lake_version`` (read once per
        tracker)."""
        from factory.data.lake import Lake
        from factory.data.span import clip_to_span

        span = (spec.data_start, spec.data_end)
        key = (lake_version, spec.symbols, span)
        if key not in self._bars:
            bars = Lake(self._lake_root).read_bars(symbols=list(spec.symbols),
                                                   version=lake_version)
            self._bars[key] = clip_to_span(bars, *span)
        return self._bars[key]

    def start_outcome(self, outcome: SpecOutcome, lake_version: int, git_commit: str,
                      profile: str, side_versions: Mapping[str, int] | None = None,
                      extra_tags: Mapping[str, str] | None = None, note: str = "") -> str:
        """Log one outcome to a new run (left RUNNING) and register its model if FINISHED.

        ``side_versions`` (the versions of the side tables the run's features read) become
        ``lake.<table>_version`` tags beside ``lake_version``: with them ``factory run
        --lake-version V --side-version TABLE=N`` reproduces the run. ``extra_tags`` are
        added to the run's (a search trial's study, number and parent run), ``note`` put
        before its description. An EVALUATED outcome (no model) is logged like a FINISHED
        one, without registration.

        Returns
        -------
        str
            The run id, to pass to :meth:`finish_outcome` once everything else about the
            outcome is stored. Until then the run counts as not done: a kill leaves it
            RUNNING for :meth:`fail_orphaned_runs`.
        """
        spec = outcome.spec
        lake_uri = str(self._lake_root / "bars")
        tags = {"spec_id": spec.id, "arch": spec.arch, "lake_version": str(lake_version),
                "git_commit": git_commit, "profile": profile, MANAGED_TAG: "true",
                "mlflow.runName": spec.label,
                NOTE_TAG: (f"{note}\n\n" if note else "") + run_description(
                    replace(outcome, status="FINISHED") if outcome.status == EVALUATED
                    else outcome, lake_version, lake_uri)}
        tags |= {f"lake.{t}_version": str(v) for t, v in (side_versions or {}).items()}
        tags |= dict(extra_tags or {})
        run = self.client.create_run(self.experiment_id, tags=tags)
        run_id = run.info.run_id
        bars = self._training_bars(spec, lake_version)
        if outcome.status == "FINISHED":
            # The model first: logged after the metrics, MLflow copies every metric of the
            # run to the model one history query at a time (half a second per model).
            self._register(run_id, outcome, lake_version, bars)
        self.client.log_batch(run_id, metrics=_metrics(outcome),
                              params=[Param(k, v) for k, v in _flat_params(outcome).items()])
        self.client.log_inputs(run_id, datasets=[bars_dataset_input(bars, lake_uri,
                                                                    lake_version)])
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "spec.json").write_text(spec.canonical_json())
            if outcome.status == "FAILED":
                (folder / "traceback.txt").write_text(outcome.error or "")
            else:
                outcome.oos.write_parquet(folder / "oos_predictions.parquet")
                outcome.portfolio.write_parquet(folder / "oos_returns.parquet")
                picture = folder / "equity_drawdown.png"
                if outcome.picture:  # drawn by the worker
                    shutil.copyfile(outcome.picture, picture)
                else:
                    equity_drawdown_png(outcome.portfolio, picture,
                                        title=f"{spec.label}, lake v{lake_version}: "
                                              f"{spec.describe()}")
            self.client.log_artifacts(run_id, str(folder))
        return run_id

    def _register(self, run_id: str, outcome: SpecOutcome, lake_version: int,
                  bars: pl.DataFrame) -> str:
        min_bars = int(model_meta(outcome).get("min_bars", outcome.spec.lookback))
        example = input_example(bars, outcome.spec.symbols[0], min_bars)
        return log_and_register(self.client, self.experiment_id, outcome, run_id, lake_version,
                                example)

    def register_outcome(self, run_id: str, outcome: SpecOutcome, lake_version: int) -> str:
        """Register a FINISHED outcome's (refit) model as a version from the logged run
        ``run_id`` and tag the run ``optuna.registered``; idempotent: a run that has a
        version already keeps it. Returns the version number."""
        found = self.client.search_model_versions(f"run_id = '{run_id}'")
        version = found[0].version if found else self._register(
            run_id, outcome, lake_version,
            self._training_bars(outcome.spec, lake_version))
        self.client.set_tag(run_id, REGISTERED_TAG, "true")
        return str(version)

    def study_run(self, study: str, tags: Mapping[str, str]) -> str:
        """The run of an Optuna study (created on first use), the parent of its trials'
        runs; ``tags`` are set on it each time. It carries no managed tag: not a trial."""
        found = mlflow.search_runs(
            experiment_ids=[self.experiment_id], output_format="list",
            filter_string=f"tags.`{STUDY_TAG}` = '{study}' and tags.`{STUDY_ROLE_TAG}` = 'study'")
        if found:
            run_id = found[0].info.run_id
            for key, value in tags.items():
                self.client.set_tag(run_id, key, value)
            return run_id
        return self.client.create_run(self.experiment_id, tags={
            **tags, STUDY_TAG: study, STUDY_ROLE_TAG: "study",
            "mlflow.runName": f"study {study}"}).info.run_id

    def close_study_run(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Log a study's figures at ``step`` (its number of trials) and mark its run FINISHED."""
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step)
                                               for k, v in metrics.items() if np.isfinite(v)])
        self.client.set_terminated(run_id, status="FINISHED")

    def study_trial_runs(self, study: str) -> dict[int, tuple[str, bool]]:
        """Trial number -> (run id, registered?) of every trial of ``study`` logged for good:
        FINISHED, or FAILED other than by :meth:`fail_orphaned_runs` (a killed logger)."""
        runs = mlflow.search_runs(experiment_ids=[self.experiment_id], output_format="list",
                                  filter_string=f"tags.`{STUDY_TAG}` = '{study}'")
        return {int(r.data.tags[TRIAL_TAG]): (r.info.run_id,
                                              r.data.tags.get(REGISTERED_TAG) == "true")
                for r in runs if TRIAL_TAG in r.data.tags and (
                    r.info.status == "FINISHED" or (r.info.status == "FAILED"
                                                    and FAILURE_TAG not in r.data.tags))}

    def finish_outcome(self, run_id: str, status: str) -> None:
        """Mark a run FINISHED or FAILED: the last step of logging an outcome."""
        self.client.set_terminated(run_id, status=status)

    def fail_orphaned_runs(self) -> list[str]:
        """Fail every factory run a killed command left RUNNING; returns their run ids.

        Each gets the tag ``factory.failure = killed``; the model versions registered from
        it (never completed) are deleted, and a registered model left without versions
        with them. Only safe while no other command logs to this store: the factory holds
        FACTORY_HOME's lock while it runs.
        """
        runs = mlflow.search_runs(
            experiment_ids=[self.experiment_id], output_format="list",
            filter_string=f"attributes.status = 'RUNNING' and tags.`{MANAGED_TAG}` = 'true'")
        for run in runs:
            run_id = run.info.run_id
            for version in self.client.search_model_versions(f"run_id = '{run_id}'"):
                self.client.delete_model_version(version.name, version.version)
                if not self.client.search_model_versions(f"name = '{version.name}'"):
                    self.client.delete_registered_model(version.name)
            self.client.set_tag(run_id, FAILURE_TAG, "killed")
            self.client.set_terminated(run_id, status="FAILED")
        return [run.info.run_id for run in runs]

    def trained_spec_ids(self, lake_version: int) -> set[str]:
        """Spec ids with a FINISHED run on ``lake_version`` (re-running skips them); a search
        trial counts only once its model is registered."""
        runs = mlflow.search_runs(
            experiment_ids=[self.experiment_id], output_format="list",
            filter_string=(f"attributes.status = 'FINISHED' and tags.lake_version = "
                           f"'{lake_version}' and tags.`{MANAGED_TAG}` = 'true'"))
        return {r.data.tags["spec_id"] for r in runs
                if TRIAL_TAG not in r.data.tags or r.data.tags.get(REGISTERED_TAG) == "true"}

    def latest_versions(self) -> pl.DataFrame:
        """Latest completed version of every factory-managed model, with its run's metrics.

        Only versions whose run is FINISHED count: a version a killed command registered
        (its run still RUNNING, until the next factory run fails it) is never a candidate.

        Returns
        -------
        pl.DataFrame
            ``model_name`` (the registered name), ``version``, ``stage``, ``run_id``,
            ``spec_id``, ``lake_version``, ``config`` (arch, lookback, feature set and
            hyperparameters in words), ``symbols`` (the universe, comma-joined),
            ``trained_through`` (the last bar the version was fitted on; "" for versions
            logged before the refit), ``cost_bps`` and ``execution_price`` (how its
            evaluation traded) and one column per metric over all folds.
        """
        managed = {m.name: m.tags.get("spec", m.name) for m in self._all_registered_models()
                   if m.tags.get(MANAGED_TAG) == "true"}
        runs = {r.info.run_id: r for r in mlflow.search_runs(
            experiment_ids=[self.experiment_id], output_format="list",
            filter_string="attributes.status = 'FINISHED'")}
        latest: dict[str, object] = {}
        for mv in self._all_model_versions():
            if mv.name in managed and mv.run_id in runs and (
                    mv.name not in latest or int(mv.version) > int(latest[mv.name].version)):
                latest[mv.name] = mv
        rows = []
        for name, mv in sorted(latest.items()):
            run = runs[mv.run_id]
            rows.append({"model_name": name, "version": str(mv.version),
                         "stage": mv.current_stage, "run_id": mv.run_id,
                         "spec_id": run.data.tags.get("spec_id", ""),
                         "lake_version": run.data.tags.get("lake_version", ""),
                         "config": managed[name],
                         "symbols": run.data.params.get("symbols", ""),
                         "cost_bps": float(run.data.params.get("eval.cost_bps", "nan")),
                         "execution_price": run.data.params.get("eval.execution_price",
                                                                "close"),
                         "trained_through": mv.tags.get("trained_through", ""),
                         **{k: v for k, v in run.data.metrics.items()
                            if not k.startswith(FOLD_PREFIX)}})
        return pl.DataFrame(rows)

    def apply_stages(self, targets: dict[str, StageTarget], decided_at: str
                     ) -> list[StageChange]:
        """Move each targeted model's latest version to its stage and alias (idempotent).

        See ``factory.tracking_stages.apply_stages``.
        """
        latest = self.latest_versions()
        if latest.is_empty():
            return []
        versions = dict(zip(latest["model_name"], latest["version"], strict=True))
        return apply_stages(self.client, versions, self._all_model_versions(), targets,
                            decided_at)

    def production_models(self) -> list[str]:
        """Names of registered models with a version in the Production stage."""
        return self.models_in(PRODUCTION)

    def models_in(self, *stages: str) -> list[str]:
        """Names of registered models with a version in one of ``stages``."""
        return sorted({mv.name for mv in self._all_model_versions()
                       if mv.current_stage in stages})

    def trial_sharpes(self, symbols: str) -> np.ndarray:
        """Walk-forward Sharpe of every FINISHED factory run ever made on a universe.

        Parameters
        ----------
        symbols : str
            The universe as runs record it (``params.symbols``: comma-joined).

        Returns
        -------
        numpy.ndarray
            One annualised Sharpe ratio per run (NaN where the run logged none): every
            lake version, profile and retraining counts as a trial.
        """
        runs = mlflow.search_runs(
            experiment_ids=[self.experiment_id], output_format="list",
            filter_string=(f"attributes.status = 'FINISHED' and params.symbols = '{symbols}' "
                           f"and tags.`{MANAGED_TAG}` = 'true'"))
        return np.array([r.data.metrics.get("sharpe", np.nan) for r in runs], dtype=np.float64)

    def load_predictor(self, name: str, version: str) -> Predictor:
        """The registered version as MLflow serves it, loaded from the registry."""
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        return model.unwrap_python_model().predictor

    def oos_predictions(self, run_id: str) -> pl.DataFrame:
        """The walk-forward out-of-sample predictions a factory run logged (``symbol``,
        ``ts``, ``fold``, ``score``, ``position``, ``label``, ``strategy_return``)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = self.client.download_artifacts(run_id, "oos_predictions.parquet", tmp)
            return pl.read_parquet(path)

    def log_live_metrics(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        """A snapshot's live figures on a version's training run, as step ``step``."""
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[
            Metric(k, float(v), now, step) for k, v in metrics.items() if np.isfinite(v)])

    def log_selection(self, record: dict, metrics: dict[str, float], folder: Path) -> str:
        """The selection's run in its own experiment: metrics, record and ``folder``."""
        finite = {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}
        return log_selection_run(self.client, self._experiment(AUDIT_EXPERIMENT), record,
                                 finite, folder)

    def log_trading_run(self, run_name: str, record: dict, metrics: Mapping[str, float],
                        folder: Path) -> str:
        """One run in the trading experiment: ``record`` as params (scalars) and
        ``record.json``, the finite ``metrics``, and ``folder``'s files (plots, tables).

        Returns
        -------
        str
            The run id.
        """
        run = self.client.create_run(
            self._experiment(TRADING_EXPERIMENT), run_name=run_name,
            tags={"factory.kind": record.get("kind", "backtest"),
                  "mlflow.note.content": record.get("description", "")})
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = [Param(k, str(v)[:6000]) for k, v in record.items()
                  if isinstance(v, str | int | float | bool)]
        self.client.log_batch(run_id, params=params, metrics=[
            Metric(k, float(v), now, 0) for k, v in metrics.items() if np.isfinite(v)])
        self.client.log_dict(run_id, record, "record.json")
        self.client.log_artifacts(run_id, str(folder))
        self.client.set_terminated(run_id)
        return run_id

    def _all_registered_models(self):
        return _paged(self.client.search_registered_models, max_results=1000)

    def _all_model_versions(self):
        return _paged(self.client.search_model_versions, max_results=10000)


def _paged(search, **kwargs) -> list:
    items, token = [], None
    while True:
        page = search(page_token=token, **kwargs)
        items.extend(page)
        token = page.token
        if not token:
            return items


def load_production_model(name: str):
    """``mlflow.pyfunc.load_model("models:/<name>@production")`` for callers outside tracking."""
    return mlflow.pyfunc.load_model(f"models:/{name}@{ALIAS}")
