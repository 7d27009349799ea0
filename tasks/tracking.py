"""Prefect tasks around MLflow tracking and the lake's strategy_returns table."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from factory.data.lake import Lake
from factory.data.strategy_returns import append_strategy_returns
from factory.tracking import Tracker
from factory.training.fit import SpecOutcome


@task(name="fail-orphaned-runs", tags=["mlflow"], cache_policy=NO_CACHE)
def fail_orphaned_runs_task(tracker: Tracker) -> list[str]:
    """Fail the runs a killed factory command left RUNNING (see ``Tracker.fail_orphaned_runs``)."""
    return tracker.fail_orphaned_runs()


@task(name="log-outcome", task_run_name="log-{outcome.spec.arch}-{outcome.spec.short_id}",
      tags=["mlflow"], cache_policy=NO_CACHE)
def log_outcome_task(tracker: Tracker, lake: Lake, outcome: SpecOutcome, lake_version: int,
                     git_commit: str, profile: str,
                     side_versions: dict[str, int] | None = None) -> str:
    """Log one outcome to MLflow, append its OOS return series to the lake, finish the run.

    The run is marked FINISHED (or FAILED) last, so a kill at any step leaves it RUNNING
    and the next factory run fails it and logs the spec again. No retries: logging is not
    idempotent, and a retry after a partial log would leave a second run and registered
    version for the same training.
    """
    run_id = tracker.start_outcome(outcome, lake_version, git_commit, profile, side_versions)
    if outcome.status == "FINISHED":
        append_strategy_returns(lake, outcome.portfolio, run_id=run_id, spec_id=outcome.spec.id,
                                model_name=outcome.spec.model_name, lake_version=lake_version)
    tracker.finish_outcome(run_id, outcome.status)
    return run_id
