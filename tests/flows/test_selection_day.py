"""(Named to run after test_flow_logs.py: in one pytest process, after this module's
in-process snapshot flows, a later harness's flow runs did not ship their logs to the API;
not yet explained, see the issue note.)

A compressed day of the factory running by itself, through a real Prefect API, a real
sqlite MLflow and real Delta tables: ingest with bars held back, the factory run, a selection,
snapshots that release the held-back bars and score them with every model in evaluation,
then the next selection.

The market has a planted signal the models learn (returns echo the return two bars
earlier); in the held-back bars it reverses, so the models' live (paper) returns turn bad,
and the next selection must demote them with the reason.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from prefect.settings import temporary_settings
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from factory.cli import app
from factory.data.ingest import IngestOptions, ingest_sources
from factory.data.lake import Lake
from factory.data.strategy_returns import LIVE_TABLE, candidate_records
from factory.evaluation.metrics import trading_metrics
from factory.paths import configure_environment
from factory.selection_run import AUDIT_TABLE
from factory.snapshot import SNAPSHOT_TABLE, take_snapshot
from factory.tracking import Tracker

pytestmark = pytest.mark.slow

HELD_BACK, RELEASED_PER_SNAPSHOT, TRAINED_BARS = 60, 20, 600


def regime_bars(seed: int = 3) -> pl.DataFrame:
    """Two assets whose returns follow ``r_t = c * r_{t-2} + e_t``: c = 0.5 for the first
    `TRAINED_BARS` bars, then c = -0.6 (the learned relationship reverses)."""
    frames = []
    for k, symbol in enumerate(("AAA", "BBB")):
        rng = np.random.default_rng([seed, k])
        n = TRAINED_BARS + HELD_BACK
        r, eps = np.zeros(n), rng.normal(0, 0.01, n)
        for t in range(2, n):
            r[t] = (0.5 if t < TRAINED_BARS else -0.6) * r[t - 2] + eps[t]
        close = 100 * np.exp(np.cumsum(r))
        open_ = np.concatenate(([close[0]], close[:-1]))
        frames.append(pl.DataFrame({
            "symbol": symbol,
            "ts": [datetime(2018, 1, 1) + timedelta(days=i) for i in range(n)],
            "open": open_, "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998, "close": close,
            "volume": rng.integers(1_000, 5_000, n).astype(float)}))
    return pl.concat(frames)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """The day's results: both selections and the snapshots' summaries."""
    root = tmp_path_factory.mktemp("continuous_home")
    saved = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL"):
        os.environ.pop(key, None)
    os.environ["FACTORY_HOME"] = str(root)
    paths = configure_environment()
    bars = regime_bars()
    bars.write_csv(root / "bars.csv")
    ingest_sources(paths, [str(root / "bars.csv")], IngestOptions(hold_back=HELD_BACK))
    with (prefect_test_harness(server_startup_timeout=120),
          temporary_settings(updates={"results.local_storage_path": root / "results"})):
        from flows.factory_flow import run_factory
        from flows.runtime import shared_prefect_api
        from flows.selection import selection_flow
        from flows.snapshot import snapshot_flow
        from flows.trading import backtest_flow, portfolio_flow

        with shared_prefect_api():
            run_factory("smoke")
            before = selection_flow(profile="smoke")
            portfolio = portfolio_flow(profile="smoke")  # decided before the held-back bars
            production = backtest_flow(profile="smoke")  # the Production set, no fallback
            snapshots = [snapshot_flow(replay_bars=RELEASED_PER_SNAPSHOT)
                         for _ in range(HELD_BACK // RELEASED_PER_SNAPSHOT)]
            after = selection_flow(profile="smoke")
            backtest = backtest_flow(profile="smoke", include_staging=True)
    yield {"paths": paths, "bars": bars, "before": before, "snapshots": snapshots,
           "after": after, "backtest": backtest, "portfolio": portfolio,
           "production": production}
    os.environ.clear()
    os.environ.update(saved)


def test_the_planted_signal_is_promoted_before_the_reversal(day):
    assert day["before"]["chosen"], day["before"]["headline"]


def test_snapshots_release_the_held_back_bars_and_score_only_new_ones(day):
    lake = Lake(day["paths"].lake)
    assert lake.read_bars().height == day["bars"].height  # everything released, once
    scored = [sum(s["scored"].values()) for s in day["snapshots"]]
    assert all(n > 0 for n in scored)
    live = lake.read_table(LIVE_TABLE)
    assert not live.is_duplicated().any()
    assert live.group_by("model_name", "version", "ts").len()["len"].max() == 1
    first_live = live["ts"].min()
    assert first_live > datetime(2018, 1, 1) + timedelta(days=TRAINED_BARS - 1)


def test_incremental_live_metrics_equal_the_metrics_of_the_whole_live_series(day):
    lake = Lake(day["paths"].lake)
    live = lake.read_table(LIVE_TABLE)
    last = lake.read_table(SNAPSHOT_TABLE).sort("step").group_by("model_name").last()
    assert last.height == live["model_name"].n_unique()
    for row in last.iter_rows(named=True):
        series = live.filter(pl.col("model_name") == row["model_name"]).sort("ts")["ret"]
        whole = trading_metrics(series.to_numpy(), 365.0)
        assert row["live_n_obs"] == whole["n_obs"] == series.len()
        assert row["live_sharpe"] == pytest.approx(whole["sharpe"], rel=1e-9)
        assert row["live_max_drawdown"] == pytest.approx(whole["max_drawdown"], rel=1e-9)
        assert row["step"] == len(day["snapshots"])


def test_each_snapshot_is_a_metric_step_on_the_models_run(day):
    tracker = Tracker(day["paths"])
    snapshots = Lake(day["paths"].lake).read_table(SNAPSHOT_TABLE)
    assert set(day["before"]["chosen"]) <= set(snapshots["model_name"])
    for run_id in snapshots["run_id"].unique():
        history = tracker.client.get_metric_history(run_id, "live_sharpe")
        assert sorted(m.step for m in history) == [1, 2, 3]


def test_models_whose_live_returns_turn_bad_are_demoted_with_the_reason(day):
    audit = Lake(day["paths"].lake).read_table(AUDIT_TABLE)
    latest = audit.filter(pl.col("decided_at") == audit["decided_at"].max())
    was_production = latest.filter(pl.col("stage_from") == "Production")
    assert was_production.height == len(day["before"]["chosen"])
    demoted = was_production.filter(pl.col("stage_to") != "Production")
    assert demoted.height >= 1
    for row in demoted.iter_rows(named=True):
        assert row["live_sharpe"] < 0
        assert "live record loses" in row["reason"], row["reason"]
    kept = was_production.filter(pl.col("stage_to") == "Production")
    assert (kept["gates_failed"] == "").all()
    changes = {(c["model_name"], c["to_stage"]) for c in day["after"]["changes"]}
    assert {(n, s) for n, s in demoted.select("model_name", "stage_to").iter_rows()} <= changes


def test_the_replay_feed_says_when_nothing_is_left(day):
    result = CliRunner().invoke(app, ["replay", "--bars", "5"])
    assert result.exit_code == 0, result.output
    assert "released 0 bars" in result.output and "0 held back" in result.output


def test_a_models_backtest_trades_what_its_evaluation_traded(day):
    """``factory backtest --model``: the engine's vectorised twin equals the model's own
    walk-forward returns; the realistic broker's run is logged with its plots and fills."""
    name = day["before"]["chosen"][0]
    result = CliRunner().invoke(app, ["backtest", "--model", name, "--profile", "smoke"])
    assert result.exit_code == 0, result.output
    assert f"model {name} v1" in result.output and "after costs" in result.output
    tracker = Tracker(day["paths"])
    run = tracker.client.search_runs(
        [tracker.client.get_experiment_by_name("model-factory-trading").experiment_id],
        order_by=["attributes.start_time DESC"], max_results=1)[0]
    metrics = run.data.metrics
    assert metrics["parity_max_abs_diff"] < 1e-9 and metrics["parity_bars"] > 100
    evaluated = Tracker(day["paths"]).latest_versions().filter(pl.col("model_name") == name)
    assert metrics["vectorised_sharpe"] == pytest.approx(evaluated["sharpe"][0], rel=1e-6)
    assert metrics["commission"] > 0 and metrics["n_fills"] > 0
    artifacts = {a.path for a in tracker.client.list_artifacts(run.info.run_id)}
    assert {"equity_drawdown.png", "fills.parquet", "orders.parquet", "record.json"} <= artifacts
    assert run.data.params["spec_ids"] and run.data.params["lake_version"]


def test_the_production_sets_backtest_trades_the_promoted_models_by_their_allocation(day):
    production = day["production"]
    assert production["models"] == sorted(day["before"]["chosen"])
    assert production["headline"].startswith(f"Production set of {len(production['models'])}")
    assert production["metrics"]["parity_max_abs_diff"] < 1e-9
    assert production["metrics"]["n_fills"] > 0


def test_the_staged_sets_backtest_says_which_set_it_traded(day):
    flow_result = day["backtest"]
    assert flow_result["models"] and flow_result["metrics"]["parity_max_abs_diff"] < 1e-9
    assert "set of" in flow_result["headline"]
    result = CliRunner().invoke(app, ["backtest", "--include-staging", "--profile", "smoke"])
    assert result.exit_code == 0, result.output
    assert "Production set of" in result.output or "Staging set of" in result.output
    missing = CliRunner().invoke(app, ["backtest", "--model", "no-such-model"])
    assert missing.exit_code == 1 and "no registered model named 'no-such-model'" in (
        missing.output)


def test_the_portfolio_targets_respect_their_limits_and_are_stored(day):
    portfolio = day["portfolio"]
    assert portfolio["models"] == sorted(day["before"]["chosen"])
    weights = np.array(list(portfolio["targets"].values()))
    assert set(portfolio["targets"]) == {"AAA", "BBB"}
    assert np.abs(weights).max() <= 0.05 + 1e-6 and np.abs(weights).sum() > 0
    metrics = portfolio["metrics"]
    assert metrics["rebalances"] > 100 and metrics["rebalances_kept_previous"] == 0
    assert metrics["parity_max_abs_diff"] < 1e-9
    stored = Lake(day["paths"].lake).read_table("portfolio_targets")
    assert stored["as_of"].max() == datetime(2018, 1, 1) + timedelta(days=TRAINED_BARS - 1)


def test_paper_trading_follows_the_targets_as_the_backtest_would(day):
    """``factory paper`` trades the bars released after the portfolio was decided with the
    backtest's classes: its stored fills are the backtest's on the same bars; a second call
    stores nothing twice."""
    from factory.backtest import Backtest, HistoricBars
    from factory.config import load_config
    from factory.trading.paper_job import FILLS_TABLE, paper_components, stored_targets

    first = CliRunner().invoke(app, ["paper", "--profile", "smoke"])
    assert first.exit_code == 0, first.output
    assert f"{HELD_BACK + 1} new bars" in first.output, first.output  # from the decision bar
    lake = Lake(day["paths"].lake)
    paper_fills = lake.read_table(FILLS_TABLE).sort("ts", "symbol")
    assert paper_fills.height > 0
    targets = stored_targets(lake)
    bars = lake.read_bars(["AAA", "BBB"]).filter(pl.col("ts") >= targets["ts"].min())
    backtest = Backtest(HistoricBars(bars), *paper_components(
        targets, load_config("smoke").trading, "close")).run()
    assert backtest.fills.sort("ts", "symbol").equals(paper_fills)
    again = CliRunner().invoke(app, ["paper", "--profile", "smoke"])
    assert again.exit_code == 0 and "0 new bars, 0 new fills" in again.output, again.output
    assert lake.read_table(FILLS_TABLE).height == paper_fills.height


def test_a_snapshot_killed_between_its_two_commits_is_repaired_by_the_next(day):
    """Runs last: it rewinds the statistics table to before the last snapshot's commit, as a
    kill after the returns' commit would leave it, and takes the snapshot again."""
    from deltalake import DeltaTable

    lake = Lake(day["paths"].lake)
    before = lake.read_table(SNAPSHOT_TABLE).sort("step").group_by("model_name").last()
    table = DeltaTable(lake.uri(SNAPSHOT_TABLE))
    table.restore(table.version() - 1)  # the last snapshot's statistics never committed
    live_rows = lake.read_table(LIVE_TABLE).height
    summary = take_snapshot(day["paths"])
    assert sum(summary.scored.values()) > 0  # the same bars, scored again
    assert lake.read_table(LIVE_TABLE).height > live_rows  # appended twice ...
    versions = Tracker(day["paths"]).latest_versions()
    records = candidate_records(lake, versions).filter(pl.col("live"))
    assert not records.select("model_name", "ts").is_duplicated().any()  # ... read once
    after = lake.read_table(SNAPSHOT_TABLE).sort("step").group_by("model_name").last()
    rescored = [name for name, count in summary.scored.items() if count]  # still evaluated
    joined = before.join(after, on="model_name", suffix="_again").filter(
        pl.col("model_name").is_in(rescored))
    assert joined.height == len(rescored) >= 1
    for row in joined.iter_rows(named=True):
        assert row["live_n_obs_again"] == row["live_n_obs"]
        assert row["live_sharpe_again"] == pytest.approx(row["live_sharpe"], rel=1e-12)
