"""Two parities. With the vectorised configuration, the event-driven engine's per-bar returns
equal the factory's vectorised evaluation (``strategy_returns``, equal-weighted over assets)
to 1e-9, for both execution prices, one and three assets. And the paper trader, fed the same
bars through a `ReplayFeed`, gives exactly the backtest's orders, fills and equity."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from factory.backtest import (
    Backtest,
    ExecutionHandler,
    HistoricBars,
    PaperTrader,
    Portfolio,
    PredictorStrategy,
    ReplayFeed,
    RiskManager,
    TargetWeightStrategy,
)
from factory.evaluation.signals import strategy_returns
from factory.training.splits import label_forward_returns
from tests.unit.test_backtest_engine import START, random_bars, weight_table

N_BARS = 3000
COST_BPS = 7.5


def random_positions(n_bars: int, n_assets: int, seed: int) -> np.ndarray:
    """Positions in [-1, 1], held for random spells, flat a tenth of the time."""
    rng = np.random.default_rng(seed)
    drawn = rng.uniform(-1.0, 1.0, (n_bars, n_assets))
    changes = rng.random((n_bars, n_assets)) < 0.6
    changes[0] = True
    last_change = np.maximum.accumulate(
        np.where(changes, np.arange(n_bars)[:, None], 0), axis=0)
    positions = np.take_along_axis(drawn, last_change, axis=0)
    positions[rng.random((n_bars, n_assets)) < 0.1] = 0.0
    return positions


def vectorised(positions: np.ndarray, prices: np.ndarray, cost_bps: float) -> np.ndarray:
    """The factory's portfolio return per decision bar: mean of the assets' costed returns."""
    per_asset = [strategy_returns(positions[:, j], label_forward_returns(prices[:, j]), cost_bps)
                 for j in range(positions.shape[1])]
    return np.mean(per_asset, axis=0)


@pytest.mark.parametrize("n_assets", [1, 3])
@pytest.mark.parametrize("price", ["close", "open"])
def test_engine_reproduces_vectorised_returns(price, n_assets):
    bars, open_, close = random_bars(N_BARS, n_assets, seed=n_assets)
    positions = random_positions(N_BARS, n_assets, seed=10 + n_assets)
    expected = vectorised(positions, close if price == "close" else open_, COST_BPS)
    data = HistoricBars(bars)
    result = Backtest(
        data, TargetWeightStrategy(weight_table(positions / n_assets, data.symbols), data.symbols),
        RiskManager(lot_size=None), Portfolio(data.symbols, initial_cash=12_345.0),
        ExecutionHandler.vectorised(price, COST_BPS)).run()
    got = result.returns
    assert got.height == N_BARS - 2 and np.isnan(expected[-2:]).all()
    np.testing.assert_array_equal(got["ts"].to_numpy(), data.timeline[:-2])
    np.testing.assert_allclose(got["ret"].to_numpy(), expected[:-2], rtol=0, atol=1e-9)
    assert np.abs(expected[:-2]).max() > 1e-3  # the series are not trivially zero
    charged = result.history["commission"].sum() / 12_345.0
    assert charged > 0


def test_realistic_default_departs_from_the_vectorised_model():
    """Commission on notional, drift, slippage, a volume cap and whole shares each move the
    returns away from the vectorised ones; the documented parity needs all of them off."""
    bars, _, close = random_bars(500, 3, seed=4, volume=2_000.0)
    positions = random_positions(500, 3, seed=5)
    expected = vectorised(positions, close, COST_BPS)[:-2]

    def returns(risk: RiskManager, execution: ExecutionHandler) -> np.ndarray:
        data = HistoricBars(bars)
        table = weight_table(positions / 3, data.symbols)
        return Backtest(data, TargetWeightStrategy(table, data.symbols), risk,
                        Portfolio(data.symbols), execution).run().returns["ret"].to_numpy()

    parity = returns(RiskManager(lot_size=None), ExecutionHandler.vectorised("close", COST_BPS))
    np.testing.assert_allclose(parity, expected, rtol=0, atol=1e-9)
    departures = {
        "notional commission": (RiskManager(lot_size=None), ExecutionHandler(
            commission_bps=COST_BPS, slippage_bps=0.0, max_volume_share=None,
            rebalance="target")),
        "orders sized at the decision close": (RiskManager(lot_size=None), ExecutionHandler(
            commission_bps=COST_BPS, slippage_bps=0.0, max_volume_share=None)),
        "realistic default": (RiskManager(), ExecutionHandler(commission_bps=COST_BPS)),
    }
    for name, (risk, execution) in departures.items():
        gap = np.nanmax(np.abs(returns(risk, execution) - expected))
        assert gap > 1e-6, name


def _bars_and_weights(n_bars: int):
    bars, _, _ = random_bars(n_bars, 3, seed=21, volume=3_000.0)
    rng = np.random.default_rng(22)
    ragged = bars.filter(~((pl.col("symbol") == "S1") & (pl.col("ts") < START + timedelta(5))))
    return ragged, rng.uniform(-0.6, 0.6, (n_bars, 3))


def _components(symbols, weights):
    """Fresh components, the same for the backtest and the paper trader."""
    return (TargetWeightStrategy(weight_table(weights, symbols), symbols),
            RiskManager(max_position_weight=0.5, max_gross_leverage=1.2, max_drawdown=0.3),
            Portfolio(symbols), ExecutionHandler(price="open", commission_bps=3.0,
                                                 slippage_bps=2.0, max_volume_share=0.05))


def test_paper_trader_matches_the_backtest_bar_for_bar():
    bars, weights = _bars_and_weights(200)
    data = HistoricBars(bars)
    backtest = Backtest(data, *_components(data.symbols, weights)).run()
    feed = ReplayFeed.from_frame(bars, timestamps_per_frame=1)
    trader = PaperTrader(feed, *_components(feed.symbols, weights))
    assert trader.run() == 200
    paper = trader.result()
    assert backtest.orders.height > 100 and (backtest.fills["cancelled"] != 0).any()
    assert paper.orders.equals(backtest.orders)
    assert paper.fills.equals(backtest.fills)
    assert paper.history.equals(backtest.history)
    assert paper.returns.equals(backtest.returns)
    assert paper.log.equals(backtest.log)


def test_paper_trader_fed_in_pieces_matches_one_backtest():
    """Bars appended while running (the live hook) give what one backtest of them gives."""
    bars, weights = _bars_and_weights(120)
    data = HistoricBars(bars)
    backtest = Backtest(data, *_components(data.symbols, weights)).run()
    cuts = [START + timedelta(days=d) for d in (0, 7, 8, 50, 120)]
    feed = ReplayFeed(data.symbols)
    trader = PaperTrader(feed, *_components(feed.symbols, weights))
    processed = []
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        trader.append(bars.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi)))
        processed.append(trader.run())
    assert processed == [7, 1, 42, 70] and trader.run() == 0
    paper = trader.result()
    assert paper.fills.equals(backtest.fills)
    assert paper.orders.equals(backtest.orders)
    np.testing.assert_array_equal(paper.equity, backtest.equity)


def test_paper_trader_runs_a_predictor_strategy_like_the_backtest():
    bars, _ = _bars_and_weights(90)

    def mean_reversion(history):
        if len(history) < 4:
            return np.zeros(3)
        recent = history.close[-4:]
        return -0.3 * np.sign(recent[-1] - recent.mean(axis=0))  # NaN before a bar: flat

    def components(symbols):
        return (PredictorStrategy(mean_reversion, symbols, window=10), RiskManager(),
                Portfolio(symbols), ExecutionHandler())

    data = HistoricBars(bars)
    backtest = Backtest(data, *components(data.symbols)).run()

    def arriving():
        for day in range(0, 90, 9):
            yield bars.filter((pl.col("ts") >= START + timedelta(day)) &
                              (pl.col("ts") < START + timedelta(day + 9)))

    trader = PaperTrader(ReplayFeed(data.symbols, source=arriving()), *components(data.symbols))
    assert trader.run() == 90
    paper = trader.result()
    assert backtest.fills.height > 50
    assert paper.fills.equals(backtest.fills) and paper.orders.equals(backtest.orders)
    np.testing.assert_array_equal(paper.equity, backtest.equity)
