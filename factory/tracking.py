"""The module that imports mlflow: runs, artifacts, the registry, stages and aliases.

(``factory/tracking_model.py``, the models-from-code file MLflow executes when it loads a
model, is the one other importer.) One experiment holds every run. Each RunSpec is its own
registered model (``<arch>-<spec id>``); each training logs a new version whose pyfunc
flavour serves ``Predictor.predict_frame``. Promotion sets the "Production" stage
(deprecated in MLflow 3 but still what the UI shows) AND the ``production`` alias (the
supported mechanism).

Logging is crash-safe: a run is created RUNNING, gets its params, metrics, artifacts and
registered version (and the caller appends its returns to the lake), and only then is
marked FINISHED or FAILED. A run a killed command left RUNNING is failed, and its model
versions deleted, by :meth:`Tracker.fail_orphaned_runs` at the start of the next factory
run, which then trains (or re-logs) the spec again.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import mlflow
import mlflow.pyfunc
import numpy as np
import polars as pl
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.models import Model

from factory.home import check_home_is_its_own
from factory.paths import FactoryPaths
from factory.training.fit import SpecOutcome
from factory.training.plots import equity_drawdown_png

EXPERIMENT = "model-factory"
AUDIT_EXPERIMENT = "model-factory-selection"
PRODUCTION = "Production"
ALIAS = "production"
MANAGED_TAG = "factory.managed"
FAILURE_TAG = "factory.failure"
MODEL_CODE = str(Path(__file__).with_name("tracking_model.py"))
"""The models-from-code file of every logged model (MLflow copies and executes it on load)."""
PIP_REQUIREMENTS = ["model-factory", "mlflow>=3.17,<3.19", "torch==2.13.0", "lightgbm",
                    "statsmodels", "polars", "pandas", "numpy"]


# Registration chatter and "no signature" notices would bury the training progress display.
# The input is a free-form features frame (its columns depend on the feature set), so the
# pyfunc deliberately has no column signature.
logging.getLogger("mlflow").setLevel(logging.ERROR)


@dataclass(frozen=True)
class StageChange:
    """One registry transition made by the selection (for the audit log)."""

    model_name: str
    version: str
    from_stage: str
    to_stage: str


def _flat_params(outcome: SpecOutcome) -> dict[str, str]:
    spec = outcome.spec
    params = {"arch": spec.arch, "lookback": spec.lookback, "feature_set": spec.feature_set,
              "seed": spec.seed, "symbols": ",".join(spec.symbols)}
    params |= {f"hp.{k}": v for k, v in spec.hparams.items()}
    params |= {f"fs.{k}": v for k, v in spec.feature_params.items()}
    params |= {f"eval.{k}": v for k, v in spec.evaluation.model_dump().items()}
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
        self.experiment_id = self._experiment(EXPERIMENT)

    def _experiment(self, name: str) -> str:
        """Id of experiment ``name``, created with an explicit artifact location unless served."""
        experiment = self.client.get_experiment_by_name(name)
        if experiment:
            return experiment.experiment_id
        location = (self._artifact_root / name).as_uri() if self._artifact_root else None
        return self.client.create_experiment(name, artifact_location=location)

    def start_outcome(self, outcome: SpecOutcome, lake_version: int, git_commit: str,
                      profile: str) -> str:
        """Log one outcome to a new run (left RUNNING) and register its model if FINISHED.

        Returns
        -------
        str
            The run id, to pass to :meth:`finish_outcome` once everything else about the
            outcome is stored. Until then the run counts as not done: a kill leaves it
            RUNNING for :meth:`fail_orphaned_runs`.
        """
        spec = outcome.spec
        tags = {"spec_id": spec.id, "arch": spec.arch, "lake_version": str(lake_version),
                "git_commit": git_commit, "profile": profile, MANAGED_TAG: "true",
                "mlflow.runName": spec.label}
        run = self.client.create_run(self.experiment_id, tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in outcome.metrics.items()
                     if np.isfinite(v)],
            params=[Param(k, v) for k, v in _flat_params(outcome).items()],
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "spec.json").write_text(spec.canonical_json())
            if outcome.status == "FAILED":
                (folder / "traceback.txt").write_text(outcome.error or "")
            else:
                outcome.oos.write_parquet(folder / "oos_predictions.parquet")
                outcome.portfolio.write_parquet(folder / "oos_returns.parquet")
                equity_drawdown_png(outcome.portfolio, folder / "equity_drawdown.png",
                                    title=f"{spec.label}, lake v{lake_version}: "
                                          f"{spec.describe()}")
            self.client.log_artifacts(run_id, str(folder))
        if outcome.status == "FINISHED":
            self._register(outcome, run_id, lake_version)
        return run_id

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

    def _register(self, outcome: SpecOutcome, run_id: str, lake_version: int) -> None:
        """Log the pyfunc model (from code, no pickle) and register it as a new version.

        The model is logged into the run by id, not through ``mlflow.start_run``, whose
        context would mark the run FINISHED before the version and the lake rows exist.
        Registration goes through the client: the fluent ``registered_model_name`` path
        prints to stderr for every model, which buried the training progress display.
        """
        spec = outcome.spec
        logged = self.client.create_logged_model(self.experiment_id, name="model",
                                                 source_run_id=run_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = Model.log(
                artifact_path=None, flavor=mlflow.pyfunc, name="model", run_id=run_id,
                model_id=logged.model_id, python_model=MODEL_CODE,
                artifacts={"model_dir": outcome.model_dir}, pip_requirements=PIP_REQUIREMENTS,
            )
        if not self.client.search_registered_models(f"name = '{spec.model_name}'"):
            self.client.create_registered_model(
                spec.model_name, tags={MANAGED_TAG: "true", "spec": spec.describe()},
                description=f"Model Factory RunSpec {spec.id}")
        self.client.create_model_version(
            spec.model_name, source=info.model_uri, run_id=run_id,
            tags={"spec_id": spec.id, "lake_version": str(lake_version), "run_id": run_id})

    def trained_spec_ids(self, lake_version: int) -> set[str]:
        """Spec ids with a FINISHED run on ``lake_version`` (re-running skips them)."""
        runs = mlflow.search_runs(
            experiment_ids=[self.experiment_id], output_format="list",
            filter_string=(f"attributes.status = 'FINISHED' and tags.lake_version = "
                           f"'{lake_version}' and tags.`{MANAGED_TAG}` = 'true'"))
        return {r.data.tags["spec_id"] for r in runs}

    def latest_versions(self) -> pl.DataFrame:
        """Latest completed version of every factory-managed model, with its run's metrics.

        Only versions whose run is FINISHED count: a version a killed command registered
        (its run still RUNNING, until the next factory run fails it) is never a candidate.

        Returns
        -------
        pl.DataFrame
            ``model_name``, ``version``, ``stage``, ``run_id``, ``spec_id``, ``lake_version``
            and one column per logged metric.
        """
        managed = {m.name for m in self._all_registered_models()
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
                         "config": run.data.tags.get("mlflow.runName", name),
                         **run.data.metrics})
        return pl.DataFrame(rows)

    def apply_selection(self, chosen: list[str]) -> list[StageChange]:
        """Promote the latest version of each chosen model, archive every other Production one.

        Idempotent: a second call with the same ``chosen`` changes nothing and returns [].
        """
        latest = self.latest_versions()
        latest_version = dict(zip(latest["model_name"], latest["version"], strict=True))
        changes: list[StageChange] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for mv in self._all_model_versions():
                keep = mv.name in chosen and str(mv.version) == latest_version.get(mv.name)
                if mv.current_stage == PRODUCTION and not keep:
                    self.client.transition_model_version_stage(mv.name, mv.version, "Archived")
                    changes.append(StageChange(mv.name, str(mv.version), PRODUCTION, "Archived"))
            for name in chosen:
                version = latest_version[name]
                mv = self.client.get_model_version(name, version)
                if mv.current_stage != PRODUCTION:
                    self.client.transition_model_version_stage(name, version, PRODUCTION)
                    changes.append(StageChange(name, version, mv.current_stage, PRODUCTION))
                if ALIAS not in mv.aliases:
                    self.client.set_registered_model_alias(name, ALIAS, version)
            for model in self._all_registered_models():
                if model.name not in chosen and ALIAS in (model.aliases or {}):
                    self.client.delete_registered_model_alias(model.name, ALIAS)
        return changes

    def production_models(self) -> list[str]:
        """Names of registered models with a version in the Production stage."""
        return sorted({mv.name for mv in self._all_model_versions()
                       if mv.current_stage == PRODUCTION})

    def log_selection_audit(self, record: dict) -> None:
        """Append one selection decision to the audit log (a run in its own experiment)."""
        with mlflow.start_run(experiment_id=self._experiment(AUDIT_EXPERIMENT),
                              run_name=f"selection-{record['decided_at']}",
                              tags={"factory.kind": "selection"}):
            mlflow.log_dict(record, "selection.json")

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
