"""The engine's results, bit for bit, against a reference the engine computed before its per-bar
fast paths existed.

``tests/unit/data/backtest_reference/`` holds the bars and target weights of each case below
and everything the engine returned for them (history, returns, weights, orders, fills, log,
event counts), written by `write_reference` from the engine as of commit 04d008e, whose loop
worked on numpy arrays alone. The cases cover both execution prices, both rebalance modes,
both cost models, position and gross limits, whole and fractional shares, volume caps,
symbols without a bar, the drawdown kill switch, the non-positive-equity kill switch and the
predictor strategy, on one symbol (the scalar path) and on two or three (the array path).
Every float must match to the bit (NaN where NaN): a faster engine must not move a result.

To rewrite the reference (only when a result is meant to change, saying why in the commit):
``python -m tests.unit.test_backtest_reference``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from factory.backtest import (
    Backtest,
    BacktestResult,
    ExecutionHandler,
    HistoricBars,
    Portfolio,
    PredictorStrategy,
    RiskManager,
    TargetWeightStrategy,
)
from tests.unit.test_backtest_engine import START, random_bars, timeline, weight_table

REFERENCE = Path(__file__).parent / "data" / "backtest_reference"
FRAMES = ("history", "returns", "weights", "orders", "fills", "log")
Components = Callable[[], tuple[RiskManager, ExecutionHandler, float]]


def _held(rng: np.random.Generator, n_bars: int, n_symbols: int, scale: float) -> np.ndarray:
    """Weights in [-scale, scale] held for random spells, flat a tenth of the time."""
    drawn = rng.uniform(-scale, scale, (n_bars, n_symbols))
    changes = rng.random((n_bars, n_symbols)) < 0.4
    changes[0] = True
    last_change = np.maximum.accumulate(np.where(changes, np.arange(n_bars)[:, None], 0),
                                        axis=0)
    weights = np.take_along_axis(drawn, last_change, axis=0)
    weights[rng.random((n_bars, n_symbols)) < 0.1] = 0.0
    return weights


def _ragged(bars: pl.DataFrame) -> pl.DataFrame:
    """S1 starts on day 5 and misses days 30-31; S0 misses day 12."""
    day = (pl.col("ts") - START).dt.total_days()
    return bars.filter(~((pl.col("symbol") == "S1") & ((day < 5) | day.is_between(30, 31))) &
                       ~((pl.col("symbol") == "S0") & (day == 12)))


def _crash_bars(seed: int) -> pl.DataFrame:
    """One symbol: a random walk with a 30% fall in the middle, then a recovery; volumes
    of a few hundred shares, so a volume cap binds."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.01, 200)
    steps[80:95] = -0.025
    steps[120:140] = 0.02
    close = 100.0 * np.exp(np.cumsum(steps))
    open_ = close * np.exp(rng.normal(0.0, 0.003, 200))
    return pl.DataFrame({"symbol": "S0", "ts": timeline(200), "open": open_,
                         "high": np.maximum(open_, close) * 1.002,
                         "low": np.minimum(open_, close) * 0.998, "close": close,
                         "volume": rng.uniform(200.0, 600.0, 200)})


def _inputs() -> dict[str, tuple[pl.DataFrame, pl.DataFrame | None]]:
    """Each case's bars and target-weight table (None: the predictor strategy)."""
    rng = np.random.default_rng(2024)
    cases: dict[str, tuple[pl.DataFrame, pl.DataFrame | None]] = {}

    def table(bars: pl.DataFrame, scale: float) -> pl.DataFrame:
        symbols = sorted(bars["symbol"].unique().to_list())
        n_bars = bars["ts"].n_unique()
        return weight_table(_held(rng, n_bars, len(symbols), scale), symbols)

    for name, n_symbols, volume, scale, ragged in (
            ("capped_open_3", 3, 3_000.0, 0.6, True), ("default_3", 3, 1e9, 0.5, False),
            ("default_1", 1, 1e9, 1.2, False), ("capped_limits_1", 1, 400.0, 1.5, False),
            ("target_1", 1, 1e9, 1.3, False), ("vectorised_1", 1, 1e9, 1.0, False),
            ("vectorised_3", 3, 1e9, 0.4, False), ("turnover_2", 2, 5_000.0, 0.9, True)):
        bars, _, _ = random_bars(160, n_symbols, seed=int(rng.integers(1_000)), volume=volume)
        bars = _ragged(bars) if ragged else bars
        cases[name] = (bars, table(bars, scale))
    crash = _crash_bars(7)
    cases["kill_1"] = (crash, table(crash, 0.8).with_columns(weight=pl.col("weight").abs() + 0.2))
    cases["bust_1"] = (crash.with_columns(volume=pl.lit(1e9)), table(crash, 0.0)
                       .with_columns(weight=pl.lit(12.0)))
    predicted, _, _ = random_bars(150, 2, seed=99, volume=2_000.0)
    cases["predictor_2"] = (_ragged(predicted), None)
    cases["predictor_1"] = (random_bars(150, 1, seed=98, volume=300.0)[0], None)
    return cases


COMPONENTS: dict[str, Components] = {
    "capped_open_3": lambda: (
        RiskManager(max_position_weight=0.5, max_gross_leverage=1.2, max_drawdown=0.3),
        ExecutionHandler(price="open", commission_bps=3.0, slippage_bps=2.0,
                         max_volume_share=0.05), 1e6),
    "default_3": lambda: (RiskManager(), ExecutionHandler(), 1e6),
    "default_1": lambda: (RiskManager(), ExecutionHandler(), 250_000.0),
    "capped_limits_1": lambda: (
        RiskManager(max_position_weight=0.8, max_gross_leverage=0.7, lot_size=5.0),
        ExecutionHandler(price="open", commission_bps=4.0, slippage_bps=3.0,
                         max_volume_share=0.2), 1e6),
    "target_1": lambda: (
        RiskManager(max_position_weight=0.9, lot_size=None),
        ExecutionHandler(price="open", commission_bps=5.0, slippage_bps=2.0,
                         max_volume_share=None, rebalance="target"), 54_321.0),
    "vectorised_1": lambda: (RiskManager(lot_size=None),
                             ExecutionHandler.vectorised("open", 7.5), 12_345.0),
    "vectorised_3": lambda: (RiskManager(lot_size=None),
                             ExecutionHandler.vectorised("close", 7.5), 12_345.0),
    "turnover_2": lambda: (
        RiskManager(max_gross_leverage=1.0, max_drawdown=0.03, lot_size=None),
        ExecutionHandler(commission_bps=10.0, slippage_bps=1.0, max_volume_share=0.5,
                         rebalance="target", cost_model="weight-turnover"), 1e6),
    "kill_1": lambda: (RiskManager(max_drawdown=0.1),
                       ExecutionHandler(max_volume_share=0.5), 30_000.0),
    "bust_1": lambda: (RiskManager(), ExecutionHandler(price="open"), 1e5),
    "predictor_2": lambda: (RiskManager(max_position_weight=0.3), ExecutionHandler(), 1e6),
    "predictor_1": lambda: (RiskManager(lot_size=3.0),
                            ExecutionHandler(price="open", max_volume_share=0.3), 1e6),
}


def _momentum(history) -> np.ndarray:
    """0.4 times the sign of the last close-to-close move (NaN where a symbol lacks a bar)."""
    if len(history) < 2:
        return np.zeros(len(history.symbols))
    return 0.4 * np.sign(history.close[-1] - history.close[-2])


def run_case(name: str, bars: pl.DataFrame, weights: pl.DataFrame | None) -> BacktestResult:
    """The backtest of one case, on fresh components."""
    risk, execution, cash = COMPONENTS[name]()
    data = HistoricBars(bars)
    strategy = (PredictorStrategy(_momentum, data.symbols, window=5) if weights is None
                else TargetWeightStrategy(weights, data.symbols))
    return Backtest(data, strategy, risk, Portfolio(data.symbols, cash), execution).run()


def _frames(name: str, result: BacktestResult) -> dict[str, pl.DataFrame]:
    """The result's frames and event counts, each with a leading ``case`` column."""
    frames = {kind: getattr(result, kind) for kind in FRAMES}
    frames["event_counts"] = pl.DataFrame({kind: [n] for kind, n in result.event_counts.items()})
    return {kind: frame.select(pl.lit(name).alias("case"), pl.all())
            for kind, frame in frames.items()}


def write_reference(folder: Path = REFERENCE) -> None:
    """Run every case and store its inputs and results as Parquet in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    bars, targets, results = [], [], {kind: [] for kind in (*FRAMES, "event_counts")}
    for name, (case_bars, case_weights) in _inputs().items():
        bars.append(case_bars.select(pl.lit(name).alias("case"), pl.all()))
        if case_weights is not None:
            targets.append(case_weights.select(pl.lit(name).alias("case"), pl.all()))
        for kind, frame in _frames(name, run_case(name, case_bars, case_weights)).items():
            results[kind].append(frame)
    pl.concat(bars).write_parquet(folder / "bars.parquet")
    pl.concat(targets).write_parquet(folder / "targets.parquet")
    for kind, frames in results.items():
        pl.concat(frames).write_parquet(folder / f"{kind}.parquet")


def _stored(kind: str, name: str) -> pl.DataFrame:
    frame = pl.read_parquet(REFERENCE / f"{kind}.parquet")
    return frame.filter(pl.col("case") == name)


def assert_identical(got: pl.DataFrame, expected: pl.DataFrame, what: str) -> None:
    """Same columns, types and rows; floats equal to the bit (so -0.0 is not 0.0), NaN where
    NaN."""
    assert got.schema == expected.schema, what
    assert got.height == expected.height, what
    for column in got.columns:
        a, b = got[column], expected[column]
        if a.dtype == pl.Float64:
            x, y = a.to_numpy(), b.to_numpy()
            nan = np.isnan(x)
            np.testing.assert_array_equal(nan, np.isnan(y), err_msg=f"{what}.{column}")
            np.testing.assert_array_equal(x[~nan].view(np.uint64), y[~nan].view(np.uint64),
                                          err_msg=f"{what}.{column}")
        else:
            assert a.to_list() == b.to_list(), f"{what}.{column}"


def test_the_cases_reach_what_they_are_meant_to_cover():
    logs = pl.read_parquet(REFERENCE / "log.parquet")
    fills = pl.read_parquet(REFERENCE / "fills.parquet")

    def logged(name: str, text: str) -> bool:
        return logs.filter((pl.col("case") == name) &
                           pl.col("message").str.contains(text, literal=True)).height > 0

    assert logged("capped_open_3", "no bar at the fill time")
    assert logged("capped_open_3", "partly filled") and logged("capped_limits_1", "partly filled")
    assert logged("capped_open_3", "position limit") and logged("capped_limits_1", "gross lev")
    assert logged("kill_1", "kill switch: drawdown") and logged("turnover_2", "kill switch")
    assert logged("bust_1", "is not positive")
    assert logged("predictor_1", "partly filled")
    assert fills.filter(pl.col("price").is_nan()).height > 0
    assert fills.group_by("case").len().height == len(COMPONENTS)


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_results_equal_the_reference_to_the_bit(name):
    bars = _stored("bars", name).drop("case")
    weights = _stored("targets", name).drop("case")
    result = run_case(name, bars, weights if weights.height else None)
    for kind, frame in _frames(name, result).items():
        assert_identical(frame, _stored(kind, name), f"{name}.{kind}")


if __name__ == "__main__":
    write_reference()
