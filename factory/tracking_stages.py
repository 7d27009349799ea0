"""Registry stages and aliases as the selection sets them, and the selection's MLflow run.

Split from ``factory/tracking.py`` (the other importers of mlflow are it,
``tracking_registry.py`` and ``tracking_model.py``). Each stage has an alias of the same
name in lower case: ``production``, ``staging``, ``archived``; the stage is what the MLflow
UI shows (deprecated in MLflow 3), the alias what serving loads (``models:/<name>@production``).
A version's tags say why it is where it is: ``selection.reason``, ``selection.decided_at``
and, in Production, ``allocation_weight``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient

from factory.stages import ARCHIVED, NONE, PRODUCTION, STAGING

STAGE_ALIASES = {PRODUCTION: "production", STAGING: "staging", ARCHIVED: "archived"}
REASON_TAG, DECIDED_TAG = "selection.reason", "selection.decided_at"
WEIGHT_TAG = "allocation_weight"


@dataclass(frozen=True)
class StageTarget:
    """Where the selection wants a model's latest version, and why."""

    stage: str
    reason: str
    weight: float = 0.0


@dataclass(frozen=True)
class StageChange:
    """One registry transition made by the selection (for the audit log)."""

    model_name: str
    version: str
    from_stage: str
    to_stage: str
    reason: str = ""


def apply_stages(client: MlflowClient, latest: dict[str, str], versions: list,
                 targets: dict[str, StageTarget], decided_at: str) -> list[StageChange]:
    """Move each targeted model's latest version to its stage and alias; archive the rest.

    Every other version of a targeted model that sits in Production or Staging is archived
    (a newer version replaces it). Tags are rewritten only when they differ, so applying the
    same targets twice changes nothing and returns [].

    Parameters
    ----------
    client : MlflowClient
        The registry.
    latest : dict of str to str
        Model name to its latest completed version.
    versions : list of ModelVersion
        Every version in the registry.
    targets : dict of str to StageTarget
        Model name to target; models not named keep what they have.
    decided_at : str
        The selection's timestamp, tagged on every version it moves.
    """
    changes: list[StageChange] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stages are deprecated in MLflow 3, still shown
        for mv in versions:
            stale = mv.name in targets and str(mv.version) != latest.get(mv.name)
            if stale and mv.current_stage in (PRODUCTION, STAGING):
                client.transition_model_version_stage(mv.name, mv.version, ARCHIVED)
                changes.append(StageChange(mv.name, str(mv.version), mv.current_stage, ARCHIVED,
                                           "a newer version replaces it"))
        for name, target in sorted(targets.items()):
            mv = client.get_model_version(name, latest[name])
            if target.stage != NONE and mv.current_stage != target.stage:
                client.transition_model_version_stage(name, mv.version, target.stage)
                changes.append(StageChange(name, str(mv.version), mv.current_stage, target.stage,
                                           target.reason))
                client.set_model_version_tag(name, mv.version, DECIDED_TAG, decided_at)
            _set_tags(client, mv, target)
            _set_alias(client, name, mv, target.stage)
    return changes


def _set_tags(client: MlflowClient, mv, target: StageTarget) -> None:
    """The reason and, in Production, the allocation weight (only where they changed)."""
    wanted = {REASON_TAG: target.reason[:5000]}
    if target.stage == PRODUCTION:
        wanted[WEIGHT_TAG] = f"{target.weight:.4f}"
    for key, value in wanted.items():
        if mv.tags.get(key) != value:
            client.set_model_version_tag(mv.name, mv.version, key, value)
    if target.stage != PRODUCTION and WEIGHT_TAG in mv.tags:
        client.delete_model_version_tag(mv.name, mv.version, WEIGHT_TAG)


def _set_alias(client: MlflowClient, name: str, mv, stage: str) -> None:
    """Point the stage's alias at ``mv`` and drop the model's other stage aliases."""
    wanted = STAGE_ALIASES.get(stage)
    model_aliases = client.get_registered_model(name).aliases or {}
    for alias in STAGE_ALIASES.values():
        if alias != wanted and alias in model_aliases:
            client.delete_registered_model_alias(name, alias)
    if wanted and str(model_aliases.get(wanted)) != str(mv.version):
        client.set_registered_model_alias(name, wanted, mv.version)


def log_selection_run(client: MlflowClient, experiment_id: str, record: dict,
                      metrics: dict[str, float], folder: Path) -> str:
    """One MLflow run per selection: its metrics, ``selection.json`` and ``folder``'s files.

    Returns
    -------
    str
        The run id.
    """
    run = client.create_run(experiment_id, run_name=f"selection-{record['decided_at']}",
                            tags={"factory.kind": "selection", "profile": record["profile"],
                                  "mlflow.note.content": record["headline"]})
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    client.log_dict(run.info.run_id, record, "selection.json")
    client.log_artifacts(run.info.run_id, str(folder))
    client.set_terminated(run.info.run_id)
    return run.info.run_id
