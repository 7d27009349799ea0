"""What a run and a registered model version carry, for the MLflow UI and for serving.

Split from ``factory/tracking.py`` (which calls these; the two, with the models-from-code
file ``tracking_model.py``, are the only modules that import mlflow). Here: the pyfunc model
logged from code with its signature (raw bar columns in; ``score``, ``position`` out), an
input example cut from the real training bars and per-architecture pip requirements; the
registered version with its description and key out-of-sample metrics as tags; the run's
description (``mlflow.note.content``) and its training data as an MLflow dataset input
(``bars``: the lake's Delta table at the version read).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import mlflow.data
import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl
from mlflow import MlflowClient
from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from factory.training.fit import SpecOutcome
from model_zoo.registry import ARCHITECTURES

MANAGED_TAG = "factory.managed"
MODEL_CODE = str(Path(__file__).with_name("tracking_model.py"))
"""The models-from-code file of every logged model (MLflow copies and executes it on load)."""
MLFLOW_REQUIREMENT = "mlflow>=3.17,<3.19"
VERSION_METRIC_TAGS = ("sharpe", "buy_and_hold_sharpe", "max_drawdown", "win_rate", "n_obs")
"""Out-of-sample metrics copied onto each registered version as tags."""
EXAMPLE_SCORED_BARS = 10
"""Bars of the input example that get a score (the rest is the warm-up they need)."""
BARS_DATASET = "bars"
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("datetime", "ts"),
                   *(ColSpec("double", c) for c in ("open", "high", "low", "close")),
                   ColSpec(AnyType(), "volume"), ColSpec("string", "symbol", required=False)]),
    outputs=Schema([ColSpec("double", "score"), ColSpec("double", "position")]),
)
"""Raw bars in (``symbol`` only for several assets); per bar a score and a position out.

``volume`` is any number: MLflow refuses int64 for a double column, and volumes usually
come as integers (the model reads them as floats)."""


class LakeTableSource(DeltaDatasetSource):
    """The lake's Delta table at a version; records version 0 too (MLflow's own
    ``DeltaDatasetSource.to_dict`` drops a version that is falsy)."""

    def to_dict(self) -> dict:
        """``path`` and ``delta_table_version``, always both."""
        return {**super().to_dict(), "delta_table_version": self.delta_table_version}


class ModelNameTakenError(ValueError):
    """A registered model of this name belongs to another RunSpec (a label collision)."""


def pip_requirements(arch: str) -> list[str]:
    """The project with the extra that provides ``arch``'s library, and MLflow.

    Only what the architecture needs: a LightGBM model does not ask for torch.
    """
    return [f"model-factory[{','.join(ARCHITECTURES[arch].extras)}]", MLFLOW_REQUIREMENT]


def input_example(bars: pl.DataFrame, symbol: str, min_bars: int) -> pd.DataFrame:
    """The last bars of ``symbol`` in the training data: a warm-up and a few scored bars."""
    one = bars.filter(pl.col("symbol") == symbol).sort("ts")
    one = one.tail(min_bars + EXAMPLE_SCORED_BARS - 1)
    return one.select("ts", "open", "high", "low", "close", "volume", "symbol").to_pandas()


def bars_dataset_input(bars: pl.DataFrame, lake_uri: str, lake_version: int) -> DatasetInput:
    """The training bars as an MLflow dataset input: the lake's Delta table at a version.

    The digest names the table, the version, the symbols and the span of history they keep
    (``data.start``/``data.end``), so two runs that read the same bars share one dataset
    record and runs on another lake, universe or span do not.
    """
    symbols = ",".join(sorted(bars["symbol"].unique().to_list()))
    span = f"{bars['ts'].min()}..{bars['ts'].max()}"
    digest = hashlib.sha256(f"{lake_uri}@{lake_version}:{symbols}:{span}".encode()
                            ).hexdigest()[:10]
    source = LakeTableSource(path=lake_uri, delta_table_version=lake_version)
    dataset = mlflow.data.from_polars(bars, source=source, name=BARS_DATASET, digest=digest)
    return DatasetInput(Dataset(**dataset.to_dict()),
                        tags=[InputTag("mlflow.data.context", "training")])


def _hparams(outcome: SpecOutcome) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(outcome.spec.hparams.items())) or "defaults"


def run_description(outcome: SpecOutcome, lake_version: int, lake_uri: str) -> str:
    """Markdown for the run page (``mlflow.note.content``): the config and the data."""
    spec, ev = outcome.spec, outcome.spec.evaluation
    features = ", ".join(f"{k}={v}" for k, v in sorted(spec.feature_params.items()))
    rows = [
        ("registered model", f"`{spec.model_name}`"),
        ("architecture", spec.arch),
        ("lookback", f"{spec.lookback} bars"),
        ("feature set", f"{spec.feature_set} ({features})" if features else spec.feature_set),
        ("hyperparameters", _hparams(outcome)),
        ("evaluation", f"{ev.n_folds} purged walk-forward folds, test {ev.test_fraction:.0%}, "
                       f"embargo {ev.embargo_bars} bars, {ev.cost_bps} bps per unit turnover, "
                       f"trades at the next {ev.execution_price}"),
        ("data", f"lake version {lake_version} ({lake_uri}): {', '.join(spec.symbols)}, "
                 f"{outcome.bar_frequency or 'unknown'} bars"),
        ("seed", str(spec.seed)),
        ("spec id", f"`{spec.id}`"),
    ]
    table = "\n".join(f"| {key} | {value} |" for key, value in rows)
    status = ("" if outcome.status == "FINISHED"
              else "\n\nThis config FAILED; its traceback is the artifact `traceback.txt`.")
    return f"**{spec.label}**\n\n| | |\n|---|---|\n{table}{status}"


def _metric(metrics: dict[str, float], key: str, fmt: str) -> str:
    value = metrics.get(key, float("nan"))
    return format(value, fmt) if np.isfinite(value) else "n/a"


def version_description(outcome: SpecOutcome, lake_version: int) -> str:
    """What this version is, how it did out of sample, and how to serve it."""
    spec, m = outcome.spec, outcome.metrics
    return (
        f"{spec.arch}, lookback {spec.lookback}, feature set {spec.feature_set}, "
        f"{_hparams(outcome)}; trained on lake version {lake_version} "
        f"({', '.join(spec.symbols)}, {outcome.bar_frequency or 'unknown'} bars). "
        f"Refit on all history through {outcome.trained_through or 'the last bar'} after "
        f"the walk-forward evaluation; the figures are the walk-forward ones, out of sample after "
        f"{spec.evaluation.cost_bps} bps costs: Sharpe {_metric(m, 'sharpe', '.2f')} "
        f"(buy and hold {_metric(m, 'buy_and_hold_sharpe', '.2f')}), max drawdown "
        f"{_metric(m, 'max_drawdown', '.1%')}, win rate {_metric(m, 'win_rate', '.1%')} "
        f"over {_metric(m, 'n_obs', '.0f')} bars. Serve it with "
        f"mlflow.pyfunc.load_model(\"models:/{spec.model_name}@production\").predict(bars): "
        "raw bars (ts, open, high, low, close, volume, optional symbol) in, per bar a score "
        "and a position in [-1, 1] out.")


def version_tags(outcome: SpecOutcome, run_id: str, lake_version: int) -> dict[str, str]:
    """Spec id, lake version, run id, the refit's last bar and the key out-of-sample metrics."""
    tags = {"spec_id": outcome.spec.id, "lake_version": str(lake_version), "run_id": run_id}
    if outcome.trained_through:
        tags["trained_through"] = outcome.trained_through
    for key in VERSION_METRIC_TAGS:
        value = outcome.metrics.get(key)
        if value is not None and np.isfinite(value):
            tags[key] = str(int(value)) if key == "n_obs" else f"{value:.4f}"
    return tags


def ensure_registered_model(client: MlflowClient, outcome: SpecOutcome) -> None:
    """Create the spec's registered model, or check an existing one belongs to this spec.

    Raises
    ------
    ModelNameTakenError
        The name is registered with another ``spec_id`` tag: two specs share a label.
    """
    spec = outcome.spec
    found = client.search_registered_models(f"name = '{spec.model_name}'")
    if not found:
        client.create_registered_model(
            spec.model_name, tags={MANAGED_TAG: "true", "spec": spec.describe(),
                                   "spec_id": spec.id},
            description=(f"Model Factory config {spec.describe()} (spec id {spec.id}). "
                         "One version per training on a lake version; the selection moves "
                         "the `production` alias."))
        return
    owner = found[0].tags.get("spec_id", spec.id)
    if owner != spec.id:
        raise ModelNameTakenError(
            f"registered model {spec.model_name!r} belongs to spec {owner}, not {spec.id}: "
            "their ids share the first 10 hex digits; change the seed of one of them")


def log_and_register(client: MlflowClient, experiment_id: str, outcome: SpecOutcome,
                     run_id: str, lake_version: int, example: pd.DataFrame) -> str:
    """Log the pyfunc model (from code, no pickle) into the run and register a version.

    The model is logged into the run by id, not through ``mlflow.start_run``, whose context
    would mark the run FINISHED before the version and the lake rows exist. Registration
    goes through the client: the fluent ``registered_model_name`` path prints to stderr for
    every model. MLflow loads the logged model and scores the input example as a REST request
    would, but a failure there is only a warning in its log (muted here): the tests serve
    every architecture from the registry to check it for real.

    Returns
    -------
    str
        The new version number.
    """
    spec = outcome.spec
    ensure_registered_model(client, outcome)
    logged = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = Model.log(
            artifact_path=None, flavor=mlflow.pyfunc, name="model", run_id=run_id,
            model_id=logged.model_id, python_model=MODEL_CODE,
            artifacts={"model_dir": outcome.model_dir}, signature=SIGNATURE,
            input_example=example, pip_requirements=pip_requirements(spec.arch),
        )
    version = client.create_model_version(
        spec.model_name, source=info.model_uri, run_id=run_id, model_id=logged.model_id,
        tags=version_tags(outcome, run_id, lake_version),
        description=version_description(outcome, lake_version))
    return str(version.version)


def model_meta(outcome: SpecOutcome) -> dict:
    """The ``meta.json`` the training wrote beside the model."""
    return json.loads((Path(outcome.model_dir) / "meta.json").read_text())
