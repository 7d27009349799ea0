"""The selection flow: rate every latest model version, stage them (Production, Staging,
Archived), allocate, publish the leaderboard and keep an audit record. Idempotent: run twice
on the same registry and lake it changes nothing in the registry the second time.

Runs are named ``selection-<profile>-<YYYYmmdd-HHMM>`` (UTC, when the run starts) and log the
headline, the staged models and every registry change at INFO (the Prefect UI's Logs tab);
the leaderboard is the markdown artifact ``leaderboard``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from factory.config import load_config
from factory.leaderboard import leaderboard_markdown
from factory.locking import writer_lock
from factory.paths import configure_environment
from factory.selection_run import decide, record
from factory.tracking import Tracker
from tasks.results import JSON_RESULTS


def selection_run_name() -> str:
    """``selection-<profile>-<YYYYmmdd-HHMM>``, in UTC."""
    profile = flow_run.parameters.get("profile", "demo")
    return f"selection-{profile}-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="selection", flow_run_name=selection_run_name, persist_result=False,
      result_serializer=JSON_RESULTS)
def selection_flow(profile: str = "demo") -> dict:
    """Stage the policy's choice; returns the headline, stages, changes and leaderboard."""
    policy = load_config(profile).selection
    paths = configure_environment()
    # One selection at a time: two at once double-counted transitions in the audit log.
    with writer_lock(paths, f"selection flow --profile {profile}"):
        log, tracker = get_run_logger(), Tracker(paths)
        decision = decide(paths, profile, policy, tracker)
        result = decision.result
        log.info("profile %s: %d candidates; %s", profile, result.table.height, result.headline)
        log.info("Production: %s; Staging: %s", ", ".join(result.production) or "none",
                 ", ".join(result.staging) or "none")
        changes = record(paths, decision, tracker)
        log.info("%d registry changes%s", len(changes), "".join(
            f"\n  {c.model_name} v{c.version}: {c.from_stage} -> {c.to_stage} ({c.reason})"
            for c in changes))
        markdown = leaderboard_markdown(decision.board, result.headline)
        create_markdown_artifact(markdown=markdown, key="leaderboard",
                                 description="Model Factory leaderboard (OOS, after costs)")
        return {"headline": result.headline, "chosen": result.production,
                "staging": result.staging, "changes": [asdict(c) for c in changes],
                "pbo": decision.pbo, "leaderboard": markdown}
