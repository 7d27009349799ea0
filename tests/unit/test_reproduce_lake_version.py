"""A run reads one lake version and reproduces exactly from it (time travel by version).

The same spec evaluated on version 0 of a real Delta lake gives the same out-of-sample
figures after more bars were ingested (a fresh feature cache reads version 0 again), while the
latest version gives different ones; a side table is pinned the same way.
"""

from __future__ import annotations

import polars as pl
import pytest

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.sources import synthetic_bars
from factory.grid import expand
from factory.training.datasets import DatasetRef, cache_bars, cache_features
from factory.training.fit import evaluate_spec

SYMBOLS = ("AAA", "BBB")


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    bars = synthetic_bars(symbols=SYMBOLS, n_bars=900, seed=5, signal=0.3)
    first = bars.group_by("symbol", maintain_order=True).head(700)
    lake = Lake(tmp_path_factory.mktemp("lake") / "lake")
    assert lake.ingest_bars(first, "first.csv").version == 0
    assert lake.ingest_bars(bars, "all.csv").version == 1
    return lake


def _evaluate(lake: Lake, version: int, root, side_versions=None):
    spec = next(s for s in expand(load_config("smoke"), SYMBOLS).specs if s.arch == "lightgbm")
    ref = DatasetRef.for_lake(root / "cache", lake, version, SYMBOLS, side_versions)
    cache_bars(lake, ref)
    cache_features(ref, spec.feature_set, spec.feature_params)
    outcome = evaluate_spec(spec, ref, root / "model")
    assert outcome.status == "FINISHED", outcome.error
    return outcome


def test_an_earlier_version_reproduces_its_figures_exactly(lake, tmp_path):
    before = _evaluate(lake, 0, tmp_path / "a")
    again = _evaluate(lake, 0, tmp_path / "b")
    latest = _evaluate(lake, 1, tmp_path / "c")
    timings = {"fit_seconds", "predict_ms_per_1k"}  # compute cost: measured, not reproduced
    figures = {k: v for k, v in before.metrics.items() if k not in timings}
    assert {k: again.metrics[k] for k in figures} == figures and len(figures) > 10
    assert again.portfolio.equals(before.portfolio)
    assert latest.portfolio.height > before.portfolio.height
    assert latest.metrics["sharpe"] != before.metrics["sharpe"]


def test_side_tables_are_pinned_by_version(lake, tmp_path):
    from factory.data.side_tables import ingest_side_table

    rows = pl.DataFrame({"symbol": ["AAA", "BBB"], "ts": [lake.read_bars()["ts"][10]] * 2,
                         "score": [0.2, -0.1]})
    ingest_side_table(lake, rows, "sentiment", "news.csv")
    pinned = DatasetRef.for_lake(tmp_path, lake, 1, SYMBOLS)
    assert dict(pinned.side_versions) == {"sentiment": 0}
    ingest_side_table(lake, rows.with_columns(score=pl.lit(0.5)), "sentiment", "fix.csv")
    cache_bars(lake, pinned)
    held = pl.read_parquet(pinned.side_path("sentiment"))
    assert sorted(held["score"].to_list()) == [-0.1, 0.2]
    latest = DatasetRef.for_lake(tmp_path / "new", lake, 1, SYMBOLS)
    assert dict(latest.side_versions) == {"sentiment": 1}
