"""bench/features.py compares like with like: its pandas baseline builds the same columns as
the factory's feature sets, on a slice of the demo bars (no timing is asserted here)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from factory.data.sources import load_demo_bars
from feature_sets import FEATURE_SETS

BENCH = Path(__file__).resolve().parents[2] / "bench" / "features.py"


@pytest.fixture(scope="module")
def bench():
    """The bench script, imported as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_features", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def built(bench):
    """Both sides' frames per set, for 2015-2018 of the demo bars (inside the packaged VIX)."""
    bars = load_demo_bars().filter(pl.col("ts") >= datetime(2015, 1, 1))
    side = bench.synthetic_side_tables(bars)
    jobs, baseline = bench.factory_jobs(bars, side), bench.pandas_jobs(bars, side)
    return {name: (bench.run_factory(jobs, name), bench.run_pandas(baseline, name))
            for name in FEATURE_SETS}


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_pandas_baseline_agrees_with_the_factory(bench, built, name):
    factory, pandas = built[name]
    worst, column, one_sided = bench.compare(factory, pandas)
    assert one_sided == 0, f"{name}: {one_sided} cells held by one side only"
    assert worst < bench.TOLERANCE, f"{name}.{column} differs by {worst:.1e}"
    assert not bench.EXCLUDED


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_every_compared_column_holds_values(built, name):
    """The agreement is not vacuous: each column has finite values on the slice."""
    for frame in built[name][0]:
        empty = [c for c in frame.columns[1:]
                 if not np.isfinite(frame[c].cast(pl.Float64).to_numpy()).any()]
        assert not empty, f"{name}: no values in {empty}"


def test_compare_catches_a_difference(bench, built):
    factory, pandas = built["momentum"]
    shifted = [frame.copy() for frame in pandas]
    shifted[0]["mom_21"] = shifted[0]["mom_21"] + 1e-3
    shifted[1].iloc[200, shifted[1].columns.get_loc("acc_5")] = np.nan
    worst, column, one_sided = bench.compare(factory, shifted)
    assert column == "mom_21" and worst == pytest.approx(1e-3, rel=1e-6)
    assert one_sided == 1


def test_side_tables_are_seeded_and_in_range(bench):
    bars = load_demo_bars().filter(pl.col("ts") >= datetime(2018, 1, 1))
    first, again = bench.synthetic_side_tables(bars), bench.synthetic_side_tables(bars)
    for kind in ("sentiment", "onchain"):
        assert first[kind].equals(again[kind])
    sentiment = first["sentiment"]
    assert sentiment["score"].is_between(-1.0, 1.0).all()
    assert sentiment.group_by("symbol", pl.col("ts").dt.date()).len()["len"].unique().to_list() \
        == [2]
