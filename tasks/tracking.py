"""Prefect tasks around MLflow tracking and the lake's strategy_returns table."""

from __future__ import annotations

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from factory.data.lake import Lake
from factory.tracking import Tracker
from factory.training.fit import SpecOutcome


@task(name="log-outcome", task_run_name="log-{outcome.spec.arch}-{outcome.spec.short_id}",
      retries=2, retry_delay_seconds=2, tags=["mlflow"], cache_policy=NO_CACHE)
def log_outcome_task(tracker: Tracker, lake: Lake, outcome: SpecOutcome, lake_version: int,
                     git_commit: str, profile: str) -> str:
    """Log one outcome to MLflow and append its OOS return series to the lake."""
    run_id = tracker.log_outcome(outcome, lake_version, git_commit, profile)
    if outcome.status == "FINISHED":
        lake.append_table("strategy_returns", outcome.portfolio.with_columns(
            pl.lit(run_id).alias("run_id"), pl.lit(outcome.spec.id).alias("spec_id"),
            pl.lit(outcome.spec.model_name).alias("model_name"),
            pl.lit(lake_version).alias("lake_version"),
        ))
    return run_id
