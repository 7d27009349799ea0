"""One snapshot of continuous evaluation, in plain Python (the snapshot flow wraps it).

Every model version in evaluation mode (Production or Staging) scores the bars that reached
the lake since its last snapshot, as the registry serves it (the registered pyfunc model,
loaded from MLflow). Its live (paper) returns start after the last bar its refit saw
(the version's ``trained_through`` tag) and are appended to the lake's ``live_returns``
table; its running statistics (``LiveStats``) are updated with the new returns only, never
recomputed from the start, and stored as a row per model in ``live_snapshots`` (when it
scored new bars) together with the live metrics, which also go to the version's MLflow run
as a metric step (``live_sharpe`` etc., step = the version's snapshot count).

Crash safety: the returns are committed before the statistics. A kill between the two
leaves returns whose statistics were not updated; the next snapshot starts again from the
stored statistics, recomputes the same returns (they are deterministic) and appends them
again, and readers keep one row per (model, version, bar).

Recent bars come through the hot tier (``factory.data.tiers``: Redis at ``$FACTORY_HOT_URL``,
else this process's cache), brought up to the lake version by reading only what the lake
learnt since; a model whose history the tier does not cover reads the lake. Either way it
scores exactly the bars a full read of the lake gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import polars as pl

from factory.data.lake import Lake
from factory.data.schema import BAR_COLUMNS
from factory.data.strategy_returns import append_live_returns
from factory.data.tiers import HotTier, hot_tier, refresh
from factory.evaluation.live import (
    ROW_SCHEMA,
    LiveStats,
    bars_per_day,
    live_returns,
    rolling_window_bars,
)
from factory.evaluation.rating_engine import ROLLING_DAYS
from factory.paths import FactoryPaths
from factory.stages import EVALUATION_STAGES
from factory.tracking import Tracker
from factory.training.feature_inputs import SIDE_TABLES

SNAPSHOT_TABLE = "live_snapshots"
HISTORY_BARS = 300
"""Bars per asset before the first new decision passed to the model: its warm-up and
lookback, with room for indicators that smooth over the whole past to settle."""


@dataclass
class SnapshotSummary:
    """What one snapshot did."""

    snapshot_at: str
    lake_version: int | None
    scored: dict[str, int] = field(default_factory=dict)
    """Model name to the new live bars it scored (0 when nothing was new)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Model name to why it was not scored."""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Model name to its live metrics after this snapshot."""


def take_snapshot(paths: FactoryPaths, tracker: Tracker | None = None,
                  hot: HotTier | None = None) -> SnapshotSummary:
    """Score the new bars with every model in evaluation mode and store the live record.

    The caller holds FACTORY_HOME's writer lock. ``hot`` is the hot tier recent bars come
    through (default: the home's, `hot_tier`).
    """
    tracker = tracker or Tracker(paths)
    lake = Lake(paths.lake)
    summary = SnapshotSummary(datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), lake.version())
    versions = tracker.latest_versions()
    if versions.is_empty() or summary.lake_version is None:
        return summary
    versions = versions.filter(pl.col("stage").is_in(EVALUATION_STAGES))
    state = _latest_state(lake)
    hot = hot or hot_tier(paths)
    universes = {symbols: UniverseBars(lake, symbols, summary.lake_version, hot)
                 for symbols in versions["symbols"].unique()}
    new_returns, new_state = [], []
    for row in versions.iter_rows(named=True):
        name = row["model_name"]
        if not row["trained_through"]:
            summary.skipped[name] = "logged before versions recorded their last bar: retrain"
            continue
        stats, step = state.get((name, row["version"]), (None, 0))
        universe = universes[row["symbols"]]
        frequency, per_day = universe.frequency, bars_per_day(universe.frequency)
        stats = stats or LiveStats.empty(rolling_window_bars(max(ROLLING_DAYS), per_day))
        after = max(filter(None, (stats.last_ts, _parse(row["trained_through"]))))
        bars = universe.recent_bars(after)
        rets = live_returns(tracker.load_predictor(name, row["version"]), bars, after=after,
                            cost_bps=row["cost_bps"], execution_price=row["execution_price"],
                            side_tables=universe.side_tables)
        if rets.height:
            stats = stats.update(rets["ret"].to_numpy(), rets["ts"].max())
            new_returns.append(rets.select(
                pl.lit(name).alias("model_name"), pl.lit(row["version"]).alias("version"),
                pl.lit(row["run_id"]).alias("run_id"), "ts", "ret", "n_assets",
                pl.lit(summary.lake_version).alias("lake_version"),
                pl.lit(summary.snapshot_at).alias("snapshot_at")))
        metrics = stats.metrics(frequency.periods_per_year, per_day)
        summary.scored[name], summary.metrics[name] = rets.height, metrics
        if rets.height:  # unchanged statistics need no new row
            new_state.append({"snapshot_at": summary.snapshot_at, "model_name": name,
                              "version": row["version"], "run_id": row["run_id"],
                              "stage": row["stage"], "lake_version": summary.lake_version,
                              "step": step + 1, **stats.to_row(), **metrics})
            tracker.log_live_metrics(row["run_id"], metrics, step + 1)
    if new_returns:
        append_live_returns(lake, pl.concat(new_returns))
    if new_state:
        lake.append_table(SNAPSHOT_TABLE, pl.DataFrame(new_state, schema_overrides=ROW_SCHEMA))
    return summary


def _latest_state(lake: Lake) -> dict[tuple[str, str], tuple[LiveStats, int]]:
    """Each (model, version)'s statistics and step as of its last snapshot."""
    if lake.version(SNAPSHOT_TABLE) is None:
        return {}
    table = lake.read_table(SNAPSHOT_TABLE).sort("step").group_by(
        "model_name", "version").last()
    return {(r["model_name"], r["version"]): (LiveStats.from_row(r), int(r["step"]))
            for r in table.iter_rows(named=True)}


class UniverseBars:
    """One universe's frequency and bars at a lake version, for all its models.

    With a hot tier, recent bars come from it when it covers what a model needs; otherwise
    (or without one) every bar of the universe is read from the lake, once.
    """

    def __init__(self, lake: Lake, symbols: str, version: int,
                 hot: HotTier | None = None) -> None:
        self._lake, self._symbols, self._version = lake, symbols.split(","), version
        self.frequency = next(iter(lake.bar_frequencies(self._symbols, version).values()))
        self._hot = refresh(hot, lake, self._symbols, version,
                            keep_bars=HISTORY_BARS) if hot is not None else {}

    @cached_property
    def bars(self) -> pl.DataFrame:
        """Every bar of the universe at the version."""
        return self._lake.read_bars(symbols=self._symbols, version=self._version)

    @cached_property
    def side_tables(self) -> dict[str, pl.DataFrame]:
        """The universe's rows of each side table the lake holds (sentiment, on-chain)."""
        from factory.data.side_tables import read_side_table

        return {t: read_side_table(self._lake, t, self._symbols) for t in SIDE_TABLES
                if self._lake.version(t) is not None}

    def recent_bars(self, after: datetime) -> pl.DataFrame:
        """Every bar after ``after`` and the `HISTORY_BARS` before it, per symbol."""
        if self._hot and all(e.covers(after, HISTORY_BARS) for e in self._hot.values()):
            bars = pl.concat([e.bars for e in self._hot.values()]).select(BAR_COLUMNS)
        else:
            bars = self.bars
        before = bars.filter(pl.col("ts") <= after).group_by(
            "symbol", maintain_order=True).tail(HISTORY_BARS)
        return pl.concat([before, bars.filter(pl.col("ts") > after)]).sort("symbol", "ts")


def _parse(stamp: str) -> datetime:
    """A stored ISO timestamp as naive UTC, like the lake's ``ts``."""
    moment = datetime.fromisoformat(stamp)
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment

