"""Training outcomes on disk: plain JSON and Parquet, whole or absent, read back equal."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from factory.config import load_config
from factory.grid import expand
from factory.training.fit import SpecOutcome
from factory.training.outcomes import (
    OUTCOME_FILE,
    OutcomeMissingError,
    load_outcome,
    load_outcomes,
    outcome_dir,
    save_outcome,
)


@pytest.fixture()
def spec():
    """The smoke profile's first RunSpec (hparams with a nested list: arima's order)."""
    specs = expand(load_config("smoke"), ("AAA", "BBB")).specs
    return next(s for s in specs if s.arch == "arima")


@pytest.fixture()
def finished(spec, tmp_path):
    """A FINISHED outcome with hand-built frames, non-finite metrics and a model directory."""
    model_dir = tmp_path / "runs" / spec.id / "v3"
    model_dir.mkdir(parents=True)
    ts = pl.datetime_range(pl.datetime(2024, 1, 1), pl.datetime(2024, 1, 4), "1d", eager=True)
    oos = pl.DataFrame({"symbol": ["AAA"] * 4, "ts": ts, "fold": [0, 0, 1, 1],
                        "score": [0.1, -0.2, 0.3, 0.0], "position": [1.0, -1.0, 1.0, 0.0],
                        "label": [0.01, -0.02, 0.0, 0.005],
                        "strategy_return": [0.01, 0.02, 0.0, 0.0]})
    portfolio = pl.DataFrame({"ts": ts, "ret": [0.01, 0.02, 0.0, 0.0]})
    folds = [{"fold": 0.0, "sharpe": 0.5, "n_oos_bars": 2.0, "directional_accuracy": math.nan},
             {"fold": 1.0, "sharpe": -math.inf, "n_oos_bars": 2.0, "directional_accuracy": 0.5}]
    return SpecOutcome(spec=spec, status="FINISHED",
                       metrics={"sharpe": 1.25, "profit_factor": math.inf,
                                "recovery_bars": -math.inf, "ic": math.nan},
                       oos=oos, portfolio=portfolio, model_dir=str(model_dir), seconds=2.5,
                       fold_metrics=folds, bar_frequency="1d",
                       trained_through="2020-03-02T00:00:00")


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"{path}: non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _temporaries(directory):
    return [p.name for p in directory.parent.iterdir() if p.name.startswith(".")]


def test_finished_outcome_round_trips(finished, tmp_path):
    directory = save_outcome(finished, outcome_dir(tmp_path / "runs", finished.spec, 3))
    loaded = load_outcome(directory)

    assert loaded.spec == finished.spec and loaded.spec.id == finished.spec.id
    assert loaded.status == "FINISHED" and loaded.error is None
    assert loaded.model_dir == finished.model_dir and loaded.seconds == 2.5
    assert loaded.metrics["sharpe"] == 1.25
    assert loaded.metrics["profit_factor"] == math.inf
    assert loaded.metrics["recovery_bars"] == -math.inf
    assert math.isnan(loaded.metrics["ic"])
    assert loaded.oos.equals(finished.oos) and loaded.portfolio.equals(finished.portfolio)
    assert loaded.bar_frequency == "1d"
    assert loaded.trained_through == finished.trained_through is not None
    assert [f["fold"] for f in loaded.fold_metrics] == [0.0, 1.0]
    assert loaded.fold_metrics[0]["sharpe"] == 0.5 and loaded.fold_metrics[1]["n_oos_bars"] == 2
    assert math.isnan(loaded.fold_metrics[0]["directional_accuracy"])
    assert loaded.fold_metrics[1]["sharpe"] == -math.inf
    record = _strict_json(directory / OUTCOME_FILE)
    assert record["spec_id"] == finished.spec.id
    assert sorted(p.name for p in directory.iterdir()) == [
        "equity_drawdown.png", "oos.parquet", "outcome.json", "portfolio.parquet"]
    assert loaded.picture == str(directory / "equity_drawdown.png")
    assert (directory / "equity_drawdown.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_outcome_cached_before_fold_metrics_still_loads(finished, tmp_path):
    directory = save_outcome(finished, tmp_path / "runs" / "outcome")
    record = json.loads((directory / OUTCOME_FILE).read_text())
    record["format"] = 1
    del record["fold_metrics"], record["bar_frequency"]
    (directory / OUTCOME_FILE).write_text(json.dumps(record))
    loaded = load_outcome(directory)
    assert (loaded.fold_metrics, loaded.bar_frequency) == ([], None)
    assert loaded.metrics["sharpe"] == 1.25


def test_failed_outcome_round_trips_without_frames(spec, tmp_path):
    failed = SpecOutcome(spec=spec, status="FAILED", error="Traceback: boom", seconds=0.5)
    loaded = load_outcome(save_outcome(failed, tmp_path / "outcome"))
    assert (loaded.status, loaded.error, loaded.oos, loaded.portfolio, loaded.model_dir) == (
        "FAILED", "Traceback: boom", None, None, None)
    assert loaded.spec.id == spec.id
    assert [p.name for p in (tmp_path / "outcome").iterdir()] == [OUTCOME_FILE]


def test_a_failed_save_keeps_the_previous_outcome_and_leaves_nothing_behind(finished, tmp_path):
    directory = save_outcome(finished, tmp_path / "runs" / "outcome")
    unwritable = pl.DataFrame({"ts": [object()]}, schema={"ts": pl.Object})
    broken = SpecOutcome(spec=finished.spec, status="FINISHED", metrics={"sharpe": -9.0},
                         oos=finished.oos, portfolio=unwritable, model_dir=finished.model_dir)
    with pytest.raises(Exception):  # noqa: B017 - polars' own error for an Object column
        save_outcome(broken, directory)
    assert load_outcome(directory).metrics["sharpe"] == 1.25
    assert _temporaries(directory) == []


def test_saving_again_replaces_the_outcome_and_clears_a_killed_save(finished, tmp_path):
    directory = tmp_path / "runs" / "outcome"
    save_outcome(finished, directory)
    killed = tmp_path / "runs" / ".outcome.new-killed"
    killed.mkdir()
    (killed / "oos.parquet").write_text("half")
    finished.metrics = {"sharpe": 2.0}
    save_outcome(finished, directory)
    assert load_outcome(directory).metrics == {"sharpe": 2.0}
    assert _temporaries(directory) == []


def test_a_vanished_outcome_or_model_says_to_force(finished, tmp_path):
    with pytest.raises(OutcomeMissingError, match="--force"):
        load_outcome(tmp_path / "never-written")
    directory = save_outcome(finished, tmp_path / "runs" / "outcome")
    (tmp_path / "runs" / finished.spec.id / "v3").rmdir()
    with pytest.raises(OutcomeMissingError, match="--force"):
        load_outcome(directory)


def test_a_spec_that_does_not_hash_to_its_id_is_refused(finished, tmp_path):
    directory = save_outcome(finished, tmp_path / "runs" / "outcome")
    record = json.loads((directory / OUTCOME_FILE).read_text())
    record["spec"]["seed"] += 1
    (directory / OUTCOME_FILE).write_text(json.dumps(record))
    with pytest.raises(ValueError, match="does not hash"):
        load_outcome(directory)


def test_outcome_paths_outside_the_runs_folder_are_refused(finished, tmp_path):
    inside = save_outcome(finished, tmp_path / "runs" / "outcome")
    assert load_outcomes([str(inside)], tmp_path / "runs")[0].spec == finished.spec
    outside = save_outcome(finished, tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside"):
        load_outcomes([str(outside)], tmp_path / "runs")
    with pytest.raises(ValueError, match="outside"):
        load_outcomes([str(tmp_path / "runs" / ".." / "elsewhere")], tmp_path / "runs")
