"""bench/event_engine.py compares like with like: the engine's run in the vectorised
configuration returns what its vectorised baseline returns (no timing is asserted here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "event_engine.py"


@pytest.fixture(scope="module")
def bench():
    """The bench script, imported as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_event_engine", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_bench_case_trades_the_positions_it_baselines(bench):
    case = bench.make_case(4, 50)
    wide = case.weights.pivot(on="symbol", index="ts", values="weight").drop("ts").to_numpy()
    np.testing.assert_array_equal(wide, case.positions / 4)
    assert case.bars.height == 200 and np.ptp(case.positions) > 1.0


def test_bench_engine_and_baseline_agree(bench):
    figures = bench.measure(3, 120, repeat=1)
    assert figures["max_difference"] < 1e-9
    assert all(figures[key] > 0 for key in ("load", "vectorised", "parity", "realistic"))
