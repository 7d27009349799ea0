"""Prefect tasks around the Optuna search: naming, tags, the tags of a trial's run. No business
logic: the study runs in ``factory.search``, the logging in ``factory.tracking``.

A study task returns its report as plain dicts and lists; nothing is cached (the study's
database and the trial outcomes on disk are what a rerun resumes from). MLflow and the lake
are imported by the logging tasks only: a worker process that runs a study never loads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE

from factory.search.study import StudyPlan, TrialRecord, run_study
from factory.training.datasets import DatasetRef
from factory.training.fit import SpecOutcome

if TYPE_CHECKING:
    from factory.data.lake import Lake
    from factory.tracking import Tracker


@task(name="run-study", task_run_name="study-{plan.name}", tags=["training", "search"],
      cache_policy=NO_CACHE)
def run_study_task(plan: StudyPlan, ref: DatasetRef, runs_root: Path,
                   registered: list[int]) -> dict:
    """Run one architecture's study in a worker process (one thread per worker).

    Returns
    -------
    dict
        ``factory.search.study.StudyReport.to_dict()``.
    """
    import torch  # imported here: only training workers need it

    torch.set_num_threads(1)
    return run_study(plan, ref, runs_root, frozenset(registered)).to_dict()


@task(name="log-trial", task_run_name="log-{outcome.spec.arch}-trial-{record.number}",
      tags=["mlflow", "search"], cache_policy=NO_CACHE)
def log_trial_task(tracker: Tracker, lake: Lake, outcome: SpecOutcome, record: TrialRecord,
                   study: str, study_run_id: str, lake_version: int, git_commit: str,
                   profile: str, side_versions: dict[str, int], note: str) -> str:
    """Log one trial as a run nested under its study's run, append its OOS return series to
    the lake, then finish the run (FINISHED, or FAILED for a config that failed).

    As with ``log_outcome_task``, the run is finished last and nothing is retried: a kill
    leaves it RUNNING, the next run fails it as an orphan and logs the trial again.
    """
    from factory.data.strategy_returns import append_strategy_returns
    from factory.tracking import PARENT_TAG, STUDY_TAG, TRIAL_STATE_TAG, TRIAL_TAG

    tags = {PARENT_TAG: study_run_id, STUDY_TAG: study, TRIAL_TAG: str(record.number),
            TRIAL_STATE_TAG: record.state}
    run_id = tracker.start_outcome(outcome, lake_version, git_commit, profile, side_versions,
                                   extra_tags=tags, note=note)
    if outcome.status != "FAILED":
        append_strategy_returns(lake, outcome.portfolio, run_id=run_id, spec_id=outcome.spec.id,
                                model_name=outcome.spec.model_name, lake_version=lake_version)
    tracker.finish_outcome(run_id, "FAILED" if outcome.status == "FAILED" else "FINISHED")
    return run_id


@task(name="register-trial", task_run_name="register-{outcome.spec.label}",
      tags=["mlflow", "search"], cache_policy=NO_CACHE)
def register_trial_task(tracker: Tracker, run_id: str, outcome: SpecOutcome,
                        lake_version: int) -> str:
    """Register a best trial's refit model from its run (see ``Tracker.register_outcome``)."""
    return tracker.register_outcome(run_id, outcome, lake_version)
