"""The selection flow: rank the latest model versions, promote the top K to Production (stage
and alias), archive the rest, publish the leaderboard and keep an audit record. Idempotent:
run twice on the same registry it changes nothing the second time.

Runs are named ``selection-<profile>-<YYYYmmdd-HHMM>`` (UTC, when the run starts) and log the
candidates, the chosen set and every registry change at INFO (the Prefect UI's Logs tab)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.strategy_returns import candidate_returns
from factory.leaderboard import leaderboard_markdown, leaderboard_table, rank_candidates
from factory.locking import writer_lock
from factory.paths import configure_environment
from factory.tracking import Tracker
from tasks.results import JSON_RESULTS


def selection_run_name() -> str:
    """``selection-<profile>-<YYYYmmdd-HHMM>``, in UTC."""
    profile = flow_run.parameters.get("profile", "demo")
    return f"selection-{profile}-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="selection", flow_run_name=selection_run_name, persist_result=False,
      result_serializer=JSON_RESULTS)
def selection_flow(profile: str = "demo") -> dict:
    """Promote the policy's chosen models to Production; returns chosen names and changes."""
    policy = load_config(profile).selection
    paths = configure_environment()
    # One selection at a time: two at once double-counted transitions in the audit log.
    with writer_lock(paths, f"selection flow --profile {profile}"):
        return _select_and_promote(paths, profile, policy)


def _select_and_promote(paths, profile: str, policy) -> dict:
    """Rank, promote, publish the leaderboard and write the audit record (lock held)."""
    tracker, log = Tracker(paths), get_run_logger()
    candidates = tracker.latest_versions()
    if candidates.is_empty():
        raise ValueError("no trained model versions in the registry: run `factory run` first")
    log.info("profile %s: %d candidate model versions", profile, candidates.height)
    result = rank_candidates(policy, candidates, candidate_returns(Lake(paths.lake), candidates))
    log.info("chose %d: %s", len(result.chosen), ", ".join(result.chosen) or "none")
    changes = tracker.apply_selection(result.chosen)
    log.info("%d registry changes%s", len(changes), "".join(
        f"\n  {c.model_name} v{c.version}: {c.from_stage} -> {c.to_stage}" for c in changes))
    table = leaderboard_table(tracker.latest_versions(), result)
    markdown = leaderboard_markdown(table)
    create_markdown_artifact(markdown=markdown, key="leaderboard",
                             description="Model Factory leaderboard (OOS, after costs)")
    record = {"decided_at": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), "profile": profile,
              "chosen": result.chosen, "changes": [asdict(c) for c in changes],
              "reasons": dict(zip(result.table["model_name"], result.table["reason"],
                                  strict=True))}
    tracker.log_selection_audit(record)
    return {"chosen": result.chosen, "changes": record["changes"], "leaderboard": markdown}
