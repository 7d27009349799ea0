"""Throughput of the event-driven backtest against the vectorised evaluation of the same signals,
both measured here, in the same run, on one thread.

Two shapes: a wide universe (500 symbols x 2,000 bars) and a long single series (1 symbol x
200,000 bars). For each, random-walk bars and random target weights (positions in [-1, 1]
held a few bars, divided by the number of symbols) go through the full event loop, MARKET ->
FILL -> SIGNAL -> ORDER per bar, in two configurations: the vectorised evaluation's
(``ExecutionHandler.vectorised``, fractional shares) and the realistic default (commission
on notional, slippage, volume cap, whole shares). The baseline is
``factory.evaluation.signals.strategy_returns`` per symbol plus the equal-weighted mean, on
the same positions and labels. The figure is asset-bars per second (bars x symbols over the
wall time of ``Backtest.run``, which includes building the result frames; loading and
checking the bars is timed apart). Target: at least 200,000 asset-bars per second.

Each figure is given twice: over wall time, and over the CPU time of this process
(``time.process_time``), which on a shared machine is the engine's own cost on one core
(wall time there includes waiting for a core). The verdict against the target reads the CPU
figure.

The largest difference between the engine's returns in the vectorised configuration and
the baseline's is printed as a check that both computed the same thing.

Usage: ``python bench/event_engine.py [--repeat 1]`` (``--scale 0.01`` for a quick look).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from factory.backtest import (
    Backtest,
    ExecutionHandler,
    HistoricBars,
    Portfolio,
    RiskManager,
    TargetWeightStrategy,
)
from factory.evaluation.signals import strategy_returns
from factory.training.splits import label_forward_returns

SHAPES = ((500, 2_000), (1, 200_000))
TARGET = 200_000
COST_BPS = 2.0
HOLD_BARS = 5


@dataclass
class Case:
    """Bars, positions and the frames the engine reads, for one shape."""

    bars: pl.DataFrame
    weights: pl.DataFrame
    close: np.ndarray
    positions: np.ndarray


def make_case(n_symbols: int, n_bars: int, seed: int = 0) -> Case:
    """Random-walk bars and positions held ``HOLD_BARS`` bars, in the lake's long layout."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n_bars, n_symbols)), axis=0))
    open_ = close * np.exp(rng.normal(0.0, 0.002, close.shape))
    held = rng.uniform(-1.0, 1.0, (n_bars // HOLD_BARS + 1, n_symbols))
    positions = np.repeat(held, HOLD_BARS, axis=0)[:n_bars]
    ts = np.datetime64("2000-01-01T00:00", "us") + np.arange(n_bars) * np.timedelta64(1, "m")
    symbols = np.repeat([f"S{j:03d}" for j in range(n_symbols)], n_bars)
    long = {"symbol": symbols, "ts": np.tile(ts, n_symbols)}
    bars = pl.DataFrame(long | {
        "open": open_.T.ravel(), "high": np.maximum(open_, close).T.ravel() * 1.001,
        "low": np.minimum(open_, close).T.ravel() * 0.999, "close": close.T.ravel(),
        "volume": np.full(close.size, 1e9)})
    weights = pl.DataFrame(long | {"weight": (positions / n_symbols).T.ravel()})
    return Case(bars, weights, close, positions)


def vectorised_returns(case: Case) -> np.ndarray:
    """The factory's evaluation: costed returns per symbol, equal-weighted mean per bar."""
    per_symbol = [strategy_returns(case.positions[:, j], label_forward_returns(case.close[:, j]),
                                   COST_BPS) for j in range(case.close.shape[1])]
    return np.mean(per_symbol, axis=0)


def engine_run(data: HistoricBars, case: Case, realistic: bool):
    """One full backtest of the case's weights."""
    risk = RiskManager() if realistic else RiskManager(lot_size=None)
    execution = (ExecutionHandler(commission_bps=COST_BPS) if realistic
                 else ExecutionHandler.vectorised("close", COST_BPS))
    return Backtest(data, TargetWeightStrategy(case.weights, data.symbols), risk,
                    Portfolio(data.symbols), execution).run()


def best_of(repeat: int, work) -> tuple[float, float, object]:
    """Shortest wall time and shortest CPU time of ``repeat`` calls, and the last call's
    result."""
    wall, cpu, result = [], [], None
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = work()
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return min(wall), min(cpu), result


def measure(n_symbols: int, n_bars: int, repeat: int) -> dict[str, float]:
    """Wall seconds (``key``), CPU seconds (``key_cpu``) and the parity check for one shape."""
    case = make_case(n_symbols, n_bars)
    load_seconds, _, data = best_of(1, lambda: HistoricBars(case.bars))
    vector_seconds, vector_cpu, expected = best_of(max(repeat, 3),
                                                   lambda: vectorised_returns(case))
    parity_seconds, parity_cpu, parity = best_of(
        repeat, lambda: engine_run(data, case, realistic=False))
    realistic_seconds, realistic_cpu, _ = best_of(
        repeat, lambda: engine_run(data, case, realistic=True))
    got = parity.returns["ret"].to_numpy()
    return {"load": load_seconds, "vectorised": vector_seconds, "parity": parity_seconds,
            "realistic": realistic_seconds, "vectorised_cpu": vector_cpu,
            "parity_cpu": parity_cpu, "realistic_cpu": realistic_cpu,
            "max_difference": float(np.max(np.abs(got - expected[: len(got)])))}


def rate(asset_bars: int, seconds: float) -> str:
    """Asset-bars per second, or "n/a" when the clock did not move."""
    return f"{asset_bars / seconds:,.0f}" if seconds > 0 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply the number of bars (0.01 for a quick look)")
    args = parser.parse_args()
    for n_symbols, full_bars in SHAPES:
        n_bars = max(10, int(full_bars * args.scale))
        asset_bars = n_symbols * n_bars
        seconds = measure(n_symbols, n_bars, args.repeat)
        print(f"{n_symbols} symbols x {n_bars:,} bars = {asset_bars:,} asset-bars "
              f"(engine best of {args.repeat}, vectorised best of {max(args.repeat, 3)}; "
              f"loading the bars: {seconds['load']:.2f} s)")
        print(f"  vectorised strategy_returns:     {rate(asset_bars, seconds['vectorised']):>14} "
              f"asset-bars/s wall, {rate(asset_bars, seconds['vectorised_cpu'])} cpu")
        for label, key in (("engine, vectorised config:", "parity"),
                           ("engine, realistic default:", "realistic")):
            cpu = seconds[f"{key}_cpu"]
            verdict = "meets" if cpu > 0 and asset_bars / cpu >= TARGET else "BELOW"
            print(f"  {label:32s} {rate(asset_bars, seconds[key]):>14} asset-bars/s wall "
                  f"({seconds[key]:.2f} s; {seconds[key] / seconds['vectorised']:,.0f}x the "
                  f"vectorised time; {1e6 * seconds[key] / n_bars:.1f} us per bar)")
            print(f"  {'':32s} {rate(asset_bars, cpu):>14} asset-bars/s cpu  ({cpu:.2f} s; "
                  f"{1e6 * cpu / n_bars:.1f} us per bar; {verdict} the {TARGET:,}/s target)")
        print(f"  largest |engine - vectorised| return: {seconds['max_difference']:.1e}")


if __name__ == "__main__":
    main()
