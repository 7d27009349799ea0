"""One selection, in plain Python: read, rate, decide (`decide`), then record it (`record`).

`decide` reads the registry's latest versions, their out-of-sample records from the lake
(walk-forward and live), the trials ever run per universe, and applies the policy; it
writes nothing, so the leaderboard can preview a decision. `record` applies the decision to
the registry (stages, aliases, reasons, weights), appends it to the lake's
``selection_audit`` table and logs an MLflow "selection" run with the leaderboard as HTML and
PNG. The caller holds FACTORY_HOME's writer lock: one selection at a time.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from factory.config import SelectionConfig
from factory.data.lake import Lake
from factory.data.strategy_returns import candidate_records
from factory.evaluation.candidates import Candidates, Universe, rate_candidates
from factory.evaluation.live import bars_per_day
from factory.leaderboard import leaderboard_html, leaderboard_png, leaderboard_table
from factory.paths import FactoryPaths
from factory.selection import SelectionResult, select
from factory.tracking import Tracker
from factory.tracking_stages import StageChange, StageTarget

AUDIT_TABLE = "selection_audit"


@dataclass(frozen=True)
class Decision:
    """A selection decided but not yet applied."""

    decided_at: str
    profile: str
    candidates: Candidates
    result: SelectionResult
    board: pl.DataFrame
    """The leaderboard: candidates' figures joined with their outcome, in stage order."""

    @property
    def pbo(self) -> dict[str, float | None]:
        """Probability of backtest overfitting per universe (None where undefined)."""
        return {u: (r.pbo if r else None) for u, r in self.candidates.pbo.items()}


def decide(paths: FactoryPaths, profile: str, policy: SelectionConfig,
           tracker: Tracker | None = None) -> Decision:
    """Rate every latest version and apply the policy; writes nothing.

    Raises
    ------
    LookupError
        When the registry holds no trained version yet.
    """
    tracker = tracker or Tracker(paths)
    versions = tracker.latest_versions()
    if versions.is_empty():
        raise LookupError(f"no trained model versions in {paths.home} yet: run `factory run`")
    lake = Lake(paths.lake)
    universes = {symbols: _universe(lake, tracker, symbols)
                 for symbols in versions["symbols"].unique()}
    candidates = rate_candidates(versions, candidate_records(lake, versions), universes,
                                 policy.pbo_partitions)
    result = select(candidates.table, candidates.returns, policy)
    board = leaderboard_table(candidates.table, result)
    return Decision(datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), profile, candidates, result,
                    board)


def record(paths: FactoryPaths, decision: Decision, tracker: Tracker | None = None
           ) -> list[StageChange]:
    """Apply a decision to the registry, the audit table and an MLflow selection run.

    Returns
    -------
    list of StageChange
        The registry transitions made ([] when the registry already matched).
    """
    tracker = tracker or Tracker(paths)
    table = decision.result.table
    targets = {row["model_name"]: StageTarget(row["stage_to"], row["reason"], row["weight"])
               for row in table.iter_rows(named=True)}
    changes = tracker.apply_stages(targets, decision.decided_at)
    Lake(paths.lake).append_table(AUDIT_TABLE, audit_rows(decision))
    summary = {"decided_at": decision.decided_at, "profile": decision.profile,
               "headline": decision.result.headline, "production": decision.result.production,
               "staging": decision.result.staging, "pbo": decision.pbo,
               "allocation": {name: weight for name, weight in zip(
                   table["model_name"], table["weight"], strict=True) if weight > 0},
               "changes": [asdict(c) for c in changes],
               "reasons": dict(zip(table["model_name"], table["reason"], strict=True))}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "leaderboard.html").write_text(leaderboard_html(decision.board,
                                                                  decision.result.headline))
        leaderboard_png(decision.board, folder / "leaderboard.png", decision.result.headline)
        decision.board.write_csv(folder / "leaderboard.csv")
        tracker.log_selection(summary, _selection_metrics(decision), folder)
    return changes


AUDIT_SCHEMA: dict[str, pl.DataType] = {
    "decided_at": pl.String(), "profile": pl.String(), "model_name": pl.String(),
    "version": pl.String(), "spec_id": pl.String(), "lake_version": pl.String(),
    "symbols": pl.String(), "stage_from": pl.String(), "stage_to": pl.String(),
    "rank": pl.Int64(), "score": pl.Float64(), "sharpe": pl.Float64(),
    "walk_forward_sharpe": pl.Float64(), "deflated_sharpe": pl.Float64(), "psr": pl.Float64(),
    "n_trials": pl.Int64(), "n_obs": pl.Float64(), "live_n_obs": pl.Float64(),
    "live_sharpe": pl.Float64(), "max_drawdown": pl.Float64(), "gates_failed": pl.String(),
    "weight": pl.Float64(), "pbo": pl.Float64(), "reason": pl.String(), "headline": pl.String(),
    "metric_ranks": pl.String(),
}
"""Columns of the lake's ``selection_audit`` table: one row per candidate per selection."""


def audit_rows(decision: Decision) -> pl.DataFrame:
    """One row per candidate: the decision, its figures and the reason (`AUDIT_SCHEMA`)."""
    board = decision.board.with_columns(
        pl.lit(decision.decided_at).alias("decided_at"),
        pl.lit(decision.profile).alias("profile"),
        pl.col("symbols").replace_strict(decision.pbo, default=None, return_dtype=pl.Float64)
        .alias("pbo"),
        pl.lit(decision.result.headline).alias("headline"))
    return board.select([
        (pl.col(name) if name in board.columns else pl.lit(None)).cast(dtype).alias(name)
        for name, dtype in AUDIT_SCHEMA.items()])


def latest_audit(paths: FactoryPaths) -> pl.DataFrame | None:
    """The rows of the most recent selection in the lake, or None before the first one."""
    lake = Lake(paths.lake)
    if lake.version(AUDIT_TABLE) is None:
        return None
    audit = lake.read_table(AUDIT_TABLE)
    return audit.filter(pl.col("decided_at") == audit["decided_at"].max())


def _universe(lake: Lake, tracker: Tracker, symbols: str) -> Universe:
    """Frequency, calendar and trials of one universe.

    Raises
    ------
    LookupError
        When the lake holds none of the universe's bars: the tracking store is shared with
        homes whose lakes differ (models trained elsewhere cannot be rated here).
    """
    frequencies = lake.bar_frequencies(symbols.split(","))
    if not frequencies:
        raise LookupError(
            f"the registry holds models trained on {symbols}, whose bars the lake at "
            f"{lake.root} does not hold: a shared MLflow store needs the lake it was trained "
            "on (one FACTORY_HOME on shared storage, or the lake on S3), or ingest them here")
    frequency = next(iter(frequencies.values()))
    return Universe(frequency.periods_per_year, bars_per_day(frequency),
                    tracker.trial_sharpes(symbols))


def _selection_metrics(decision: Decision) -> dict[str, float]:
    """What the selection run logs: counts, trials and PBO (per universe when several)."""
    table = decision.result.table
    metrics = {"n_candidates": float(table.height),
               "n_production": float(len(decision.result.production)),
               "n_staging": float(len(decision.result.staging)),
               "max_trials": float(table["n_trials"].max() or 0),
               "best_deflated_sharpe": table["deflated_sharpe"].fill_nan(None).max()}
    pbo = [value for _, value in sorted(decision.pbo.items())]
    for i, value in enumerate(pbo):
        metrics["pbo" if len(pbo) == 1 else f"pbo_{i}"] = value
    return metrics

