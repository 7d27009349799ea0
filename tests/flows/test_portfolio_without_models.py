"""A selection that leaves no model in Production must not make the scheduled portfolio run
fail every day, nor keep trading the demoted models' last targets: the run completes having
unwound the stored targets, and ``factory portfolio`` unwinds them too before its error."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from factory.cli import app
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.paths import configure_environment
from factory.trading.paper_job import stored_targets
from factory.trading.portfolio_job import TARGETS_TABLE

pytestmark = pytest.mark.slow


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A home with bars of A and B and the targets an earlier portfolio run stored."""
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    for key in ("MLFLOW_TRACKING_URI", "PREFECT_HOME", "PREFECT_API_URL"):
        monkeypatch.delenv(key, raising=False)
    paths = configure_environment()
    lake = Lake(paths.lake)
    lake.ingest_bars(synthetic_bars(symbols=("A", "B"), n_bars=50, seed=1), "ab.csv")
    decided = lake.read_bars()["ts"].max()
    lake.append_table(TARGETS_TABLE, pl.DataFrame({
        "symbol": ["A", "B"], "mu": [0.001, -0.001], "weight": [0.05, -0.05]}).with_columns(
        pl.lit(decided).cast(pl.Datetime("us")).alias("as_of"),
        pl.lit(datetime(2026, 1, 1)).cast(pl.Datetime("us")).alias("decided_at"),
        pl.lit("optimal").alias("status"), pl.lit(False).alias("kept_previous")))
    return paths


def test_the_flow_completes_having_unwound_the_targets(home):
    from flows.trading import portfolio_flow

    with prefect_test_harness(server_startup_timeout=120):
        first = portfolio_flow(profile="smoke")
        second = portfolio_flow(profile="smoke")
    assert first["models"] == [] and first["run_id"] is None
    assert "no model is in Production" in first["lines"][0]
    assert "targets set flat" in first["lines"][1] and "A, B (held before)" in first["lines"][1]
    lake = Lake(home.lake)
    latest = stored_targets(lake).filter(pl.col("ts") == pl.col("ts").max())
    assert latest["weight"].to_list() == [0.0, 0.0]
    assert "nothing to unwind" in second["lines"][1]
    assert lake.read_table(TARGETS_TABLE).height == 4  # the second run stored nothing


def test_the_command_unwinds_then_says_what_to_run(home):
    result = CliRunner().invoke(app, ["portfolio", "--profile", "smoke"])
    assert result.exit_code == 1
    assert "targets set flat" in result.output and "--include-staging" in result.output
    stored = Lake(home.lake).read_table(TARGETS_TABLE)
    assert stored.filter(pl.col("status") == "no-models")["weight"].to_list() == [0.0, 0.0]
