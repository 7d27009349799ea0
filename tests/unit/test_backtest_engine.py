"""The event-driven engine on hand-computable cases: timing of fills, commission and slippage,
average-cost accounting, risk limits, the kill switch, volume caps, the strategies, and the
errors bad input gets."""

from __future__ import annotations

from datetime import datetime, timedelta

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
    ReplayFeed,
    RiskManager,
    TargetWeightStrategy,
)

START = datetime(2020, 1, 1)


def timeline(n_bars: int) -> list[datetime]:
    return [START + timedelta(days=i) for i in range(n_bars)]


def random_bars(n_bars: int, n_symbols: int, seed: int = 0,
                volume: float = 1e9) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Random-walk bars in the lake's layout, with the (bars, symbols) opens and closes."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n_bars, n_symbols)), axis=0))
    open_ = close * np.exp(rng.normal(0.0, 0.003, close.shape))
    symbols = [f"S{j}" for j in range(n_symbols)]
    bars = pl.DataFrame({
        "symbol": np.repeat(symbols, n_bars), "ts": timeline(n_bars) * n_symbols,
        "open": open_.T.ravel(), "high": np.maximum(open_, close).T.ravel() * 1.002,
        "low": np.minimum(open_, close).T.ravel() * 0.998, "close": close.T.ravel(),
        "volume": np.full(close.size, volume)})
    return bars, open_, close


def weight_table(weights: np.ndarray, symbols: list[str] | tuple[str, ...]) -> pl.DataFrame:
    """A (bars, symbols) matrix of target weights as `TargetWeightStrategy` reads it."""
    n_bars = weights.shape[0]
    return pl.DataFrame({"symbol": np.repeat(list(symbols), n_bars),
                         "ts": timeline(n_bars) * len(symbols), "weight": weights.T.ravel()})


def one_symbol(close: list[float], volume: float = 1e9, open_: list[float] | None = None):
    opens = close if open_ is None else open_
    return pl.DataFrame({"symbol": ["A"] * len(close), "ts": timeline(len(close)),
                         "open": opens, "high": np.maximum(opens, close),
                         "low": np.minimum(opens, close), "close": close,
                         "volume": [volume] * len(close)})


def run(bars: pl.DataFrame, weights: np.ndarray, risk: RiskManager | None = None,
        execution: ExecutionHandler | None = None, cash: float = 1e6) -> BacktestResult:
    data = HistoricBars(bars)
    return Backtest(data, TargetWeightStrategy(weight_table(weights, data.symbols), data.symbols),
                    risk or RiskManager(), Portfolio(data.symbols, cash),
                    execution or ExecutionHandler()).run()


def dense(frame: pl.DataFrame, column: str, ts: list[datetime],
          symbols: tuple[str, ...]) -> np.ndarray:
    """A long result frame's ``column`` as a (bars, symbols) matrix, 0 where absent."""
    out = np.zeros((len(ts), len(symbols)))
    row = {np.datetime64(t, "us"): i for i, t in enumerate(ts)}
    col = {s: j for j, s in enumerate(symbols)}
    for t, s, v in frame.select("ts", "symbol", column).iter_rows():
        out[row[np.datetime64(t, "us")], col[s]] = v
    return out


# --- timing, commission, slippage, accounting ---------------------------------------------

def test_order_decided_at_close_fills_next_bar_with_commission_and_slippage():
    bars = one_symbol([50.0, 40.0, 60.0, 60.0], open_=[49.0, 41.0, 59.0, 61.0])
    weights = np.array([[0.5], [0.5], [0.5], [0.5]])
    execution = ExecutionHandler(price="open", commission_bps=10.0, slippage_bps=20.0,
                                 max_volume_share=None)
    result = run(bars, weights, execution=execution, cash=10_000.0)
    first = result.fills.row(0, named=True)
    # decided at bar 0's close: 0.5 * 10,000 / 50 = 100 shares, bought at bar 1's open
    assert first["decision_ts"] == START and first["ts"] == START + timedelta(days=1)
    assert first["quantity"] == 100.0
    assert first["price"] == pytest.approx(41.0 * 1.002)
    assert first["slippage"] == pytest.approx(100 * 41.0 * 0.002)
    assert first["commission"] == pytest.approx(0.001 * 100 * 41.0 * 1.002)
    history = result.history.row(1, named=True)
    assert history["cash"] == pytest.approx(10_000.0 - 100 * 41.082 - 4.1082)
    assert history["equity"] == pytest.approx(history["cash"] + 100 * 40.0)


def test_close_execution_fills_at_next_close():
    bars = one_symbol([50.0, 40.0, 60.0])
    result = run(bars, np.array([[1.0], [1.0], [1.0]]),
                 execution=ExecutionHandler(commission_bps=0.0, slippage_bps=0.0,
                                            max_volume_share=None), cash=1000.0)
    first = result.fills.row(0, named=True)
    assert (first["quantity"], first["price"]) == (20.0, 40.0)  # 1000 / 50 shares, at 40


def test_average_cost_accounting_and_equity_identity():
    bars, _, _ = random_bars(300, 2, seed=3)
    rng = np.random.default_rng(4)
    weights = rng.uniform(-1.0, 1.0, (300, 2)) * (rng.random((300, 2)) < 0.3)
    result = run(bars, weights, execution=ExecutionHandler(commission_bps=3.0, slippage_bps=2.0))
    h = result.history
    identity = 1e6 + h["realised_pnl"] + h["unrealised_pnl"] - h["commission"].cum_sum()
    np.testing.assert_allclose(h["equity"].to_numpy(), identity.to_numpy(), rtol=1e-10)
    assert h["realised_pnl"].abs().max() > 0  # positions were closed, so PnL was realised


def test_realised_pnl_through_a_reversal():
    # buy 10 at 10, then target -0.5 of equity: sell through zero at 12
    bars = one_symbol([10.0, 10.0, 12.0, 12.0, 12.0])
    weights = np.array([[1.0], [1.0], [-0.5], [-0.5], [-0.5]])
    result = run(bars, weights, execution=ExecutionHandler(commission_bps=0.0, slippage_bps=0.0,
                                                           max_volume_share=None), cash=100.0)
    h = result.history
    # bar 1: 10 shares at 10; bar 3: equity 120 at bar 2's close -> -5 shares, sold 15 at 12
    assert h["realised_pnl"][3] == pytest.approx(10 * (12.0 - 10.0))
    assert h["unrealised_pnl"][3] == pytest.approx(0.0)
    assert result.fills["quantity"].to_list() == [10.0, -15.0]


# --- risk: limits and kill switch -------------------------------------------------------

def test_position_and_gross_limits_hold_at_every_bar():
    bars, _, close = random_bars(400, 4, seed=1)
    weights = np.random.default_rng(2).uniform(-2.0, 2.0, (400, 4))
    risk = RiskManager(max_position_weight=0.3, max_gross_leverage=0.8)
    result = run(bars, weights, risk=risk, execution=ExecutionHandler(slippage_bps=5.0))
    ts, symbols = timeline(400), result.symbols
    targets = dense(result.orders, "target_weight", ts, symbols)
    assert np.abs(targets).max() <= 0.3 + 1e-12
    assert np.abs(targets).sum(axis=1).max() <= 0.8 + 1e-12
    assert np.abs(targets).sum(axis=1).max() > 0.79  # the gross limit bound
    # the shares each order aims at, valued at the decision close, respect the same limits
    held = np.cumsum(dense(result.fills, "quantity", ts, symbols), axis=0)
    aimed = (held + dense(result.orders, "quantity", ts, symbols)) * close
    aimed /= result.history["equity"].to_numpy()[:, None]
    assert np.abs(aimed).max() <= 0.3 + 1e-12
    assert np.abs(aimed).sum(axis=1).max() <= 0.8 + 1e-12
    assert result.log.filter(pl.col("message").str.contains("gross leverage")).height > 0


def test_target_rebalancing_holds_the_limits_after_every_fill():
    bars, open_, _ = random_bars(300, 3, seed=5)
    weights = np.random.default_rng(6).uniform(-1.5, 1.5, (300, 3))
    risk = RiskManager(max_position_weight=0.25, max_gross_leverage=0.6, lot_size=None)
    execution = ExecutionHandler(price="open", commission_bps=0.0, slippage_bps=0.0,
                                 max_volume_share=None, rebalance="target")
    result = run(bars, weights, risk=risk, execution=execution)
    ts, symbols = timeline(300), result.symbols
    held = np.cumsum(dense(result.fills, "quantity", ts, symbols), axis=0)
    after_fill = held[1:] * open_[1:] / result.history["equity_at_execution"].to_numpy()[1:, None]
    assert np.abs(after_fill).max() <= 0.25 + 1e-9
    assert np.abs(after_fill).sum(axis=1).max() <= 0.6 + 1e-9


def test_kill_switch_flattens_and_refuses_new_exposure():
    close = [100.0] * 5 + [100.0 * 0.97**k for k in range(1, 8)] + [120.0] * 10
    bars = one_symbol(close)
    weights = np.ones((len(close), 1))  # always wants to be fully long
    result = run(bars, weights, risk=RiskManager(max_drawdown=0.1),
                 execution=ExecutionHandler(commission_bps=0.0, slippage_bps=0.0,
                                            max_volume_share=None))
    kills = result.log.filter(pl.col("message").str.starts_with("kill switch"))
    assert kills.height == 1 and "drawdown" in kills["message"][0]
    killed_at = kills["ts"][0]
    equity = result.history.filter(pl.col("ts") <= killed_at)["equity"]
    assert equity[-1] < 0.9 * equity.max() and equity[-2] >= 0.9 * equity.max()
    after = result.orders.filter(pl.col("ts") >= killed_at)
    assert after["flatten_only"].all() and (after["target_weight"] == 0).all()
    fills_after = result.fills.filter(pl.col("decision_ts") >= killed_at)
    assert fills_after.height == 1 and fills_after["quantity"][0] < 0  # one sale, no buys
    later = result.weights.filter(pl.col("ts") > fills_after["ts"][0])
    assert later.height == 0  # flat for good, though the price recovered


def test_kill_switch_with_a_volume_cap_only_ever_reduces():
    close = [100.0] * 3 + [100.0 * 0.9**k for k in range(1, 6)] + [100.0] * 12
    bars = one_symbol(close, volume=300.0)
    result = run(bars, np.ones((len(close), 1)), risk=RiskManager(max_drawdown=0.2),
                 execution=ExecutionHandler(commission_bps=0.0, slippage_bps=0.0,
                                            max_volume_share=0.5), cash=100_000.0)
    killed_at = result.log.filter(pl.col("message").str.starts_with("kill"))["ts"][0]
    held = result.fills["quantity"].cum_sum()
    after = held.filter(result.fills["ts"] > killed_at).to_numpy()
    assert after.size > 1 and np.all(np.diff(after) <= 0) and after[-1] == 0.0
    assert result.fills.filter(pl.col("ts") > killed_at)["quantity"].max() <= 0


# --- volume cap, missing bars -----------------------------------------------------------

def test_partial_fills_respect_the_volume_share_and_cancel_the_rest():
    bars, _, close = random_bars(60, 2, seed=7, volume=500.0)
    weights = np.full((60, 2), 0.4)
    execution = ExecutionHandler(commission_bps=0.0, slippage_bps=0.0, max_volume_share=0.1)
    result = run(bars, weights, execution=execution)
    fills = result.fills
    assert fills["quantity"].abs().max() <= 0.1 * 500.0
    assert (fills["cancelled"] != 0).any()
    ordered = result.orders.join(fills.select(pl.col("decision_ts").alias("ts"), "symbol",
                                              "quantity", "cancelled"), on=["ts", "symbol"])
    np.testing.assert_allclose(ordered["quantity"], ordered["quantity_right"] +
                               ordered["cancelled"])
    # the rest is not carried: each order is the target minus the shares actually held
    ts, symbols = timeline(60), result.symbols
    held = np.cumsum(dense(fills, "quantity", ts, symbols), axis=0)
    wanted = np.trunc(0.4 * result.history["equity"].to_numpy()[:, None] / close)
    np.testing.assert_allclose(dense(result.orders, "quantity", ts, symbols), wanted - held)
    assert result.log.filter(pl.col("message").str.contains("partly filled")).height > 0


def test_symbol_without_a_bar_is_neither_traded_nor_sized():
    bars, _, _ = random_bars(10, 2, seed=8)
    late = bars.filter(~((pl.col("symbol") == "S1") & (pl.col("ts") < START + timedelta(days=4))))
    late = late.filter(~((pl.col("symbol") == "S0") & (pl.col("ts") == START + timedelta(days=6))))
    result = run(late, np.full((10, 2), 0.3))
    s1 = result.fills.filter(pl.col("symbol") == "S1")
    assert s1["ts"].min() == START + timedelta(days=5)  # first sized at its first close
    gap = result.fills.filter((pl.col("symbol") == "S0") &
                              (pl.col("ts") == START + timedelta(days=6)))
    assert gap["quantity"].to_list() == [0.0] and gap["cancelled"][0] != 0
    assert result.log.filter(pl.col("message").str.contains("no bar at the fill time")).height
    assert np.isfinite(result.equity).all()


# --- strategies -------------------------------------------------------------------------

def test_predictor_strategy_sees_only_the_past():
    bars, _, close = random_bars(600, 2, seed=9)  # past the history's first two growths
    data = HistoricBars(bars)
    seen = []

    def momentum(history):
        seen.append((len(history), history.ts[-1]))
        if len(history) < 2:
            return np.zeros(2)
        return 0.4 * np.sign(history.close[-1] - history.close[-2])

    predicted = Backtest(data, PredictorStrategy(momentum, data.symbols), RiskManager(),
                         Portfolio(data.symbols), ExecutionHandler()).run()
    assert [n for n, _ in seen] == list(range(1, 601))
    assert [t for _, t in seen] == list(data.timeline)
    expected = np.vstack([np.zeros((1, 2)), 0.4 * np.sign(np.diff(close, axis=0))])
    tabled = run(bars, expected)
    assert predicted.fills.equals(tabled.fills)


def test_predictor_strategy_window_and_frame():
    bars, _, _ = random_bars(30, 3, seed=10)
    data = HistoricBars(bars)
    lengths, frames = [], []

    def record(history):
        lengths.append(len(history))
        frames.append(history.to_frame())
        return [np.nan, 0.1, 0.0]  # NaN: no view, flat

    result = Backtest(data, PredictorStrategy(record, data.symbols, window=7), RiskManager(),
                      Portfolio(data.symbols), ExecutionHandler()).run()
    assert lengths == [min(k, 7) for k in range(1, 31)]
    last_week = bars.filter(pl.col("ts") >= START + timedelta(days=23)).sort("symbol", "ts")
    assert frames[-1].equals(last_week)
    assert set(result.orders["symbol"]) == {"S1"}


def test_target_weight_strategy_holds_weights_as_of_each_bar():
    bars, _, _ = random_bars(6, 1, seed=11)
    table = pl.DataFrame({"symbol": ["S0", "S0"], "ts": [START + timedelta(days=2),
                                                         START + timedelta(days=4)],
                          "weight": [0.5, -0.25]})
    data = HistoricBars(bars)
    strategy = TargetWeightStrategy(table, data.symbols)
    got = [float(strategy.on_market(event).weights[0]) for event in data]
    assert got == [0.0, 0.0, 0.5, 0.5, -0.25, -0.25]


# --- data handlers ----------------------------------------------------------------------

def test_historic_and_replay_feeds_make_identical_market_events():
    bars, _, _ = random_bars(25, 3, seed=12)
    ragged = bars.filter(~((pl.col("symbol") == "S2") & (pl.col("ts") < START + timedelta(3))))
    historic = list(HistoricBars(ragged))
    replayed = list(ReplayFeed.from_frame(ragged, timestamps_per_frame=4))
    assert len(historic) == len(replayed) == 25
    for a, b in zip(historic, replayed, strict=True):
        assert a.ts == b.ts
        for field in ("open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert np.isnan(historic[0].close[2]) and np.isfinite(historic[3].close[2])


def test_replay_feed_takes_bars_appended_while_running():
    bars, _, _ = random_bars(6, 2, seed=13)
    feed = ReplayFeed(("S0", "S1"))
    assert list(feed) == []
    feed.append(bars.filter(pl.col("ts") < START + timedelta(days=2)))
    assert [e.ts for e in feed] == [np.datetime64(START), np.datetime64(START + timedelta(1))]
    feed.append(bars.filter(pl.col("ts") >= START + timedelta(days=2)))
    assert feed.pending() == 4 and len(list(feed)) == 4


@pytest.mark.parametrize(("change", "message"), [
    (lambda b: b.drop("volume"), r"lack the columns \['volume'\]"),
    (lambda b: b.head(0), "no rows"),
    (lambda b: pl.concat([b, b.tail(1)]), r"share a ts: symbol 'S1' rows \[9, 10\]"),
    (lambda b: b.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(-1.0)
                              .otherwise(pl.col("close")).alias("close")),
     r"'close' is not a positive finite price: symbol 'S0' rows \[3\]"),
    (lambda b: b.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(None)
                              .otherwise(pl.col("open")).alias("open")),
     r"'open' is null: symbol 'S1' rows \[7\]"),
    (lambda b: b.with_columns(volume=pl.when(pl.int_range(pl.len()) == 6).then(-5.0)
                              .otherwise(pl.col("volume"))),
     r"'volume' is negative or not finite: symbol 'S1' rows \[6\]"),
    (lambda b: pl.concat([b.slice(0, 2), b.slice(3, 2), b.slice(2, 1), b.slice(5)]),
     r"earlier than the row before it \(sort by symbol, ts\): symbol 'S0' rows \[4\]"),
    (lambda b: b.with_columns(pl.col("ts").cast(pl.Utf8)), "'ts' must be Datetime or Date"),
])
def test_bad_bars_are_refused_naming_symbol_and_rows(change, message):
    bars, _, _ = random_bars(5, 2)
    with pytest.raises(ValueError, match=message):
        HistoricBars(change(bars))


def test_replay_feed_refuses_unknown_symbols_and_bars_out_of_time():
    bars, _, _ = random_bars(4, 2)
    feed = ReplayFeed(("S0",))
    with pytest.raises(ValueError, match=r"not in the universe \['S0'\]: symbol 'S1' rows"):
        feed.append(bars)
    feed.append(bars.filter(pl.col("symbol") == "S0"))
    with pytest.raises(ValueError, match=r"at or before .*: symbol 'S0' rows \[0\]"):
        feed.append(bars.filter(pl.col("symbol") == "S0").tail(1))


def test_bad_weights_and_mismatched_components_are_refused():
    symbols = ("S0", "S1")
    good = weight_table(np.zeros((3, 2)), symbols)
    with pytest.raises(ValueError, match=r"not finite: symbol 'S1' rows \[4\]"):
        TargetWeightStrategy(good.with_columns(
            weight=pl.when(pl.int_range(pl.len()) == 4).then(np.inf).otherwise(0.0)), symbols)
    with pytest.raises(ValueError, match=r"share a ts: symbol 'S0' rows \[0, 3\]"):
        TargetWeightStrategy(pl.concat([good.head(3), good.head(1)]), symbols)
    with pytest.raises(ValueError, match=r"not in the universe"):
        TargetWeightStrategy(good, ("S0",))
    bars, _, _ = random_bars(3, 2)
    data = HistoricBars(bars)
    with pytest.raises(ValueError, match=r"strategy trades \['S0'\] but the portfolio holds"):
        Backtest(data, TargetWeightStrategy(good.filter(pl.col("symbol") == "S0"), ("S0",)),
                 RiskManager(), Portfolio(symbols), ExecutionHandler())
    with pytest.raises(ValueError, match="needs rebalance='target'"):
        ExecutionHandler(cost_model="weight-turnover")
    with pytest.raises(ValueError, match="max_drawdown must be in"):
        RiskManager(max_drawdown=1.5)
    with pytest.raises(ValueError, match=r"returned 3 weights .* has 2 symbols"):
        Backtest(data, PredictorStrategy(lambda h: np.zeros(3), symbols), RiskManager(),
                 Portfolio(symbols), ExecutionHandler()).run()


def test_a_backtest_runs_once():
    bars, _, _ = random_bars(3, 1)
    data = HistoricBars(bars)
    backtest = Backtest(data, TargetWeightStrategy(weight_table(np.ones((3, 1)), data.symbols),
                                                   data.symbols),
                        RiskManager(), Portfolio(data.symbols), ExecutionHandler())
    assert backtest.run().event_counts == {"market": 3, "fill": 2, "signal": 3, "order": 3}
    with pytest.raises(RuntimeError, match="ran already"):
        backtest.run()
