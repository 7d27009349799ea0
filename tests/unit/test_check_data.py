"""`factory check-data`: every suite on the lake and the packaged data, Data Docs, exit code."""

from __future__ import annotations

import sys
import types

import polars as pl
import pytest
from typer.testing import CliRunner

from factory.cli import app
from factory.data.data_docs import run_quality_checks
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.paths import FactoryPaths
from feature_sets import FEATURE_SETS, FeatureSet

runner = CliRunner()


def _build(bars: pl.DataFrame, inputs, window: int = 10) -> pl.DataFrame:
    """An oscillator in [0, 100] after a warm-up of ``window`` bars."""
    change = pl.col("close").diff()
    up = change.clip(lower_bound=0).rolling_mean(window)
    down = (-change).clip(lower_bound=0).rolling_mean(window)
    return bars.select("ts", pl.col("close").log().diff().alias("ret_1"),
                       (100 * up / (up + down)).alias("rsi"))


def _broken(bars: pl.DataFrame, inputs) -> pl.DataFrame:
    raise RuntimeError("half-written")


@pytest.fixture
def toy(monkeypatch) -> types.ModuleType:
    """Replace the registered feature sets by three test sets (one needs a panel, one breaks)."""
    module = types.ModuleType("toy_check_features")
    module.build, module.BOUNDS = _build, {r"^rsi$": (0.0, 100.0)}
    broken = types.ModuleType("toy_broken_features")
    broken.build, broken.BOUNDS = _broken, {}
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(sys.modules, broken.__name__, broken)
    for name in list(FEATURE_SETS):
        monkeypatch.delitem(FEATURE_SETS, name)
    monkeypatch.setitem(FEATURE_SETS, "toy", FeatureSet(module.__name__, ("bars",), "toy"))
    monkeypatch.setitem(FEATURE_SETS, "toy_panel",
                        FeatureSet(module.__name__, ("bars", "panel"), "toy on a panel"))
    return module


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    for inherited in ("MLFLOW_TRACKING_URI", "PREFECT_HOME"):
        monkeypatch.delenv(inherited, raising=False)
    Lake(tmp_path / "data" / "lake").ingest_bars(synthetic_bars(("AAA",), n_bars=80, seed=2),
                                                 "synthetic")
    return tmp_path


def test_a_clean_lake_passes_writes_data_docs_and_reports_skips(home, toy):
    result = runner.invoke(app, ["check-data", "--no-packaged"])
    assert result.exit_code == 0, result.output
    index = home / "data" / "quality" / "docs" / "index.html"
    assert index.is_file() and str(index) in result.output
    assert "ok lake.bars: 80 rows" in result.output
    assert "ok lake.features.toy: 70 rows" in result.output
    assert ("skipped lake.features.toy_panel: needs panel: the universe has one symbol (AAA)"
            in result.output)
    assert "lake.features.toy" in index.read_text()


def test_a_failing_suite_exits_1_naming_set_column_and_rows(home, toy, monkeypatch):
    monkeypatch.setattr(toy, "BOUNDS", {r"^rsi$": (0.0, 10.0)})
    result = runner.invoke(app, ["check-data", "--no-packaged"])
    assert result.exit_code == 1, result.output
    assert "FAILED lake.features.toy: feature set 'toy' on lake v0" in result.output
    assert "column 'rsi'" in result.output and "fail 'rsi in [0, 10]' (e.g. AAA at" in result.output
    assert "1 data quality suite(s) failed: lake.features.toy" in result.output
    assert (home / "data" / "quality" / "docs" / "index.html").is_file()


def test_a_feature_set_that_cannot_be_built_fails(home, toy, monkeypatch):
    monkeypatch.setitem(FEATURE_SETS, "broken", FeatureSet("toy_broken_features", ("bars",), "x"))
    result = runner.invoke(app, ["check-data", "--no-packaged"])
    assert result.exit_code == 1
    assert "FAILED lake.features.broken: feature set 'broken' on lake v0 could not be built: " \
           "RuntimeError: half-written" in result.output


def test_side_tables_in_the_lake_are_checked(home, toy):
    news = home / "news.csv"
    news.write_text("symbol,ts,score\nAAA,2015-01-05,0.5\nAAA,2015-01-06,-0.5\n")
    ingested = runner.invoke(app, ["ingest", "--kind", "sentiment", "--source", str(news)])
    assert ingested.exit_code == 0, ingested.output
    assert "sentiment table version 0: 2 rows added" in ingested.output
    result = runner.invoke(app, ["check-data", "--no-packaged"])
    assert result.exit_code == 0, result.output
    assert "ok lake.sentiment: 2 rows" in result.output


def test_the_packaged_data_sets_are_checked_with_every_feature_set(tmp_path, toy):
    report = run_quality_checks(FactoryPaths(tmp_path), lake=False)
    status = {r.name: r.status for r in report.results}
    assert status == {"demo.bars": "passed", "demo.features.toy": "passed",
                      "demo.features.toy_panel": "passed", "bokeh.bars": "passed",
                      "bokeh.features.toy": "passed", "bokeh.features.toy_panel": "passed"}
    assert report.index == tmp_path / "data" / "quality" / "docs" / "index.html"
    assert report.index.is_file() and not report.failed


def test_checking_nothing_is_an_error(home):
    result = runner.invoke(app, ["check-data", "--no-lake", "--no-packaged"])
    assert result.exit_code == 1 and "nothing to check" in result.output


def test_a_short_history_is_checked_on_the_columns_it_provides(tmp_path, toy):
    bars = pl.concat([synthetic_bars(("AAA",), n_bars=80, seed=2),
                      synthetic_bars(("BBB",), n_bars=8, seed=3)])
    Lake(tmp_path / "data" / "lake").ingest_bars(bars, "synthetic")
    report = run_quality_checks(FactoryPaths(tmp_path), packaged=False)
    toy_result = {r.name: r for r in report.results}["lake.features.toy"]
    assert toy_result.status == "passed"
    assert toy_result.detail == "77 rows; BBB not checked on rsi (null on every row)"
