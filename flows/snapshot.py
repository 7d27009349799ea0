"""The snapshot flow, served every 5 minutes: the models in evaluation mode (Production and
Staging) score the bars that reached the lake since their last snapshot, and their live
(paper) records and rolling metrics update incrementally (``factory.snapshot``).

With ``replay_bars`` > 0 it first releases that many held-back bars into the lake (the
replay feed of ``factory ingest --hold-back N``), so a demo or a test can play history
forward at a chosen speed: ``replay_bars`` bars per snapshot.

Runs are named ``snapshot-<YYYYmmdd-HHMM>`` (UTC) and log, per model, the new live bars and
its live Sharpe at INFO; the markdown artifact ``live-snapshot`` tabulates them.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from factory.data.lake import Lake
from factory.data.replay import release
from factory.locking import writer_lock
from factory.paths import configure_environment
from factory.snapshot import take_snapshot
from tasks.results import JSON_RESULTS


def snapshot_run_name() -> str:
    """``snapshot-<YYYYmmdd-HHMM>``, in UTC."""
    return f"snapshot-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="snapshot", flow_run_name=snapshot_run_name, persist_result=False,
      result_serializer=JSON_RESULTS)
def snapshot_flow(replay_bars: int = 0) -> dict:
    """Release ``replay_bars`` held-back bars (0: none), then take one snapshot."""
    paths = configure_environment()
    log = get_run_logger()
    with writer_lock(paths, "snapshot flow"):
        if replay_bars:
            released = release(paths.replay, Lake(paths.lake), replay_bars)
            log.info("replay released %d bars through %s (%d left), lake version %s",
                     released.released_bars, released.through, released.remaining,
                     released.lake_version)
        summary = take_snapshot(paths)
    for name, count in summary.scored.items():
        log.info("%s: %d new live bars, live Sharpe %.2f over %d bars", name, count,
                 summary.metrics[name]["live_sharpe"], summary.metrics[name]["live_n_obs"])
    for name, why in summary.skipped.items():
        log.info("%s skipped: %s", name, why)
    create_markdown_artifact(markdown=snapshot_markdown(summary), key="live-snapshot",
                             description="Live (paper) record of the models in evaluation")
    return asdict(summary)


def snapshot_markdown(summary) -> str:
    """Per model: new bars, live bars and live Sharpe, drawdown and 30-day Sharpe."""
    lines = [f"# Snapshot {summary.snapshot_at}, lake version {summary.lake_version}", "",
             "| model | new bars | live bars | live Sharpe | live max drawdown | 30-day Sharpe |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, count in sorted(summary.scored.items()):
        m = summary.metrics[name]
        lines.append(f"| {name} | {count} | {m['live_n_obs']:.0f} | {m['live_sharpe']:.2f} | "
                     f"{m['live_max_drawdown']:.1%} | {m['live_rolling_sharpe_30d']:.2f} |")
    if not summary.scored:
        lines.append("| (no model in Production or Staging) | | | | | |")
    return "\n".join(lines) + "\n"
