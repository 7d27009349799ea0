"""The engine's per-bar fast paths agree with what they replace.

A one-symbol universe runs on Python floats (``factory.backtest.scalar``), a wider one on
numpy arrays: the same symbol traded alone and beside a symbol that never trades must give
the same numbers to the bit. The float helpers must equal numpy's ufuncs, and the facts about
one-entry reductions the float path relies on must hold for the installed numpy. Events
store floats in a one-symbol universe but still read as arrays, and the paper trader's
one-at-a-time events equal the backtest's chunked ones.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from factory.backtest import (
    Backtest,
    EventLoop,
    ExecutionHandler,
    FillEvent,
    HistoricBars,
    MarketEvent,
    OrderEvent,
    PaperTrader,
    Portfolio,
    ReplayFeed,
    RiskManager,
    TargetWeightStrategy,
)
from factory.backtest.bars import EVENT_CHUNK
from factory.backtest.scalar import minimum, sign, single, trunc
from tests.unit.test_backtest_engine import random_bars
from tests.unit.test_backtest_reference import COMPONENTS, _stored, assert_identical

EDGES = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 0.9999999999999999, -0.9999999999999999,
         2.0**52 + 0.5, -(2.0**53), 1e300, -1e300, 5e-324, -5e-324, np.inf, -np.inf, np.nan]


def _bits(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).view(np.uint64)


def _same(got: list[float], expected: np.ndarray) -> None:
    got = np.asarray(got, dtype=np.float64)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(_bits(got[~nan]), _bits(expected[~nan]))


def test_float_helpers_equal_numpy_ufuncs_to_the_bit():
    rng = np.random.default_rng(0)
    values = [*EDGES, *rng.uniform(-1e6, 1e6, 2_000), *rng.uniform(-3.0, 3.0, 2_000)]
    array = np.array(values)
    _same([trunc(x) for x in values], np.trunc(array))
    _same([sign(x) for x in values], np.sign(array))
    pairs = [(a, b) for a in EDGES for b in EDGES]
    _same([minimum(a, b) for a, b in pairs],
          np.minimum(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])))
    assert single(np.array([2.5])) == 2.5 and single(-0.25) == -0.25
    with pytest.raises(ValueError, match="one value per field, got 2"):
        single(np.zeros(2))


def test_one_entry_sums_and_dot_products_start_from_plus_zero():
    """The float path writes ``x.sum()`` as ``x + 0.0`` and ``a @ b`` as ``a * b + 0.0``."""
    finite = [x for x in EDGES if np.isfinite(x)]
    for x in EDGES:
        _same([x + 0.0], np.array([np.array([x]).sum()]))
        _same([abs(x) + 0.0], np.array([np.abs(np.array([x])).sum()]))
    with np.errstate(over="ignore"):  # 1e300 * 1e300 is inf in both
        for a in finite:
            for b in finite:
                _same([a * b + 0.0], np.array([np.array([a]) @ np.array([b])]))


def _with_idle_symbol(bars: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``bars`` of S0 plus a symbol ZZ with a bar at every time that is never traded."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, bars.height)))
    idle = bars.with_columns(symbol=pl.lit("ZZ"), open=close, high=close * 1.01,
                             low=close * 0.99, close=close, volume=pl.lit(1e6))
    return pl.concat([bars, idle])


@pytest.mark.parametrize("name", ["default_1", "capped_limits_1", "target_1", "vectorised_1",
                                  "kill_1", "bust_1"])
def test_one_symbol_alone_equals_it_beside_an_idle_symbol(name):
    """The float path (one symbol) and the array path (two) give the same numbers."""
    bars = _stored("bars", name).drop("case")
    weights = _stored("targets", name).drop("case")
    results = []
    for frame in (bars, _with_idle_symbol(bars, seed=len(name))):
        data = HistoricBars(frame)
        risk, execution, cash = COMPONENTS[name]()
        results.append(Backtest(data, TargetWeightStrategy(weights, data.symbols), risk,
                                Portfolio(data.symbols, cash), execution).run())
    alone, paired = results
    assert (alone.symbols, paired.symbols) == (("S0",), ("S0", "ZZ"))
    assert paired.fills.height > 0 and set(paired.fills["symbol"]) == {"S0"}
    for kind in ("history", "returns", "weights", "orders", "fills", "log"):
        assert_identical(getattr(alone, kind), getattr(paired, kind), f"{name}.{kind}")
    assert alone.event_counts == paired.event_counts


def test_paper_trader_matches_the_backtest_on_one_symbol():
    bars, _, _ = random_bars(300, 1, seed=31, volume=400.0)
    weights = np.random.default_rng(32).uniform(-1.0, 1.0, 300)
    table = pl.DataFrame({"symbol": "S0", "ts": bars["ts"], "weight": weights})

    def components(symbols):
        return (TargetWeightStrategy(table, symbols), RiskManager(max_drawdown=0.4),
                Portfolio(symbols), ExecutionHandler(price="open", max_volume_share=0.2))

    data = HistoricBars(bars)
    backtest = Backtest(data, *components(data.symbols)).run()
    trader = PaperTrader(ReplayFeed.from_frame(bars, timestamps_per_frame=7),
                         *components(data.symbols))
    assert trader.run() == 300
    paper = trader.result()
    assert backtest.fills.height > 100 and (backtest.fills["cancelled"] != 0).any()
    for kind in ("history", "returns", "weights", "orders", "fills", "log"):
        assert_identical(getattr(paper, kind), getattr(backtest, kind), kind)


@pytest.mark.parametrize("n_symbols", [1, 2])
def test_chunked_market_events_equal_the_row_by_row_ones(n_symbols):
    """`BarBlock.events` (the backtest) and `BarBlock.event` (the paper trader) agree, across
    the chunks the first one works in."""
    bars, _, _ = random_bars(EVENT_CHUNK + 7, n_symbols, seed=34)
    block = HistoricBars(bars).block
    chunked = list(block.events())
    assert len(chunked) == len(block) == EVENT_CHUNK + 7
    for row in (0, EVENT_CHUNK - 1, EVENT_CHUNK, len(block) - 1):
        one = block.event(row)
        assert chunked[row].ts == one.ts == block.ts[row]
        assert chunked[row].stamp == one.stamp == int(block.ts[row].astype(np.int64))
        for field in ("open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(chunked[row], field), getattr(one, field))
            np.testing.assert_array_equal(getattr(one, field), getattr(block, field)[row])


def test_events_read_as_arrays_whatever_they_store():
    ts = np.datetime64("2021-03-04T05:06:07", "us")
    market = MarketEvent(ts, 1.0, 2.0, 0.5, 1.5, 100.0)
    assert market.stamp == int(ts.astype(np.int64))
    np.testing.assert_array_equal(market.close, [1.5])
    assert not market.close.flags.writeable
    order = OrderEvent(ts, np.array([0.1, 0.2]), np.array([3.0, -4.0]), flatten_only=False)
    np.testing.assert_array_equal(order.quantities, [3.0, -4.0])
    assert "quantities=array([ 3., -4.])" in repr(order)

    bars, _, _ = random_bars(20, 1, seed=33)
    data = HistoricBars(bars)
    table = pl.DataFrame({"symbol": "S0", "ts": bars["ts"], "weight": 0.5})
    loop = EventLoop(TargetWeightStrategy(table, data.symbols), RiskManager(),
                     Portfolio(data.symbols), ExecutionHandler())
    for event in data:
        assert event.close.shape == (1,)
        loop.process(event)
    orders, fills = loop.orders, loop.fills
    assert len(orders) == 20 and len(fills) == 19
    assert all(isinstance(f, FillEvent) and f.quantities.shape == (1,) for f in fills)
    np.testing.assert_array_equal([o.target_weights[0] for o in orders], np.full(20, 0.5))
    assert fills[0].quantities[0] == loop.result().fills["quantity"][0] > 0
    np.testing.assert_array_equal(loop.portfolio.shares, [sum(f.quantities[0] for f in fills)])
