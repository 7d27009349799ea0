"""Feature sets order_flow, cross_asset, sentiment and onchain: shape, bounds, no look-ahead,
and planted signals they must find."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from arch.data import vix
from polars.testing import assert_frame_equal
from scipy.stats import norm

from factory.data.sources import load_demo_bars
from feature_sets import FeatureInputs, cross_asset, onchain, order_flow, sentiment

START = datetime(2020, 1, 1)
PRICES = ["open", "high", "low", "close", "volume"]


def make_bars(close, symbol: str = "A", volume=None, start: datetime = START,
              step: timedelta = timedelta(days=1)) -> pl.DataFrame:
    """Bars with the given closes: open at the previous close, a 1% range around both."""
    close = np.asarray(close, dtype=float)
    open_ = np.concatenate(([close[0]], close[:-1]))
    volume = np.full(close.size, 1000.0) if volume is None else np.asarray(volume, float)
    return pl.DataFrame({"symbol": symbol, "ts": [start + i * step for i in range(close.size)],
                         "open": open_, "high": np.maximum(open_, close) * 1.01,
                         "low": np.minimum(open_, close) * 0.99, "close": close,
                         "volume": volume})


def random_walk(n: int, seed: int, scale: float = 0.01) -> np.ndarray:
    return 100.0 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0.0, scale, n)))


def assert_shape(frame: pl.DataFrame, module, rows: int) -> None:
    assert frame.columns == ["ts", *module.FEATURES]
    assert frame.height == rows
    assert all(frame.schema[c] == pl.Float64 for c in module.FEATURES)


def assert_bounds(frame: pl.DataFrame, bounds: dict, warmup: int) -> None:
    """Every column a BOUNDS regex names holds values after warm-up, all within bounds."""
    after = frame.slice(warmup)
    for pattern, (low, high) in bounds.items():
        columns = [c for c in frame.columns if re.search(pattern, c)]
        assert columns, pattern
        for column in columns:
            values = after[column].drop_nulls()
            assert values.len() > 0, column
            assert low is None or values.min() >= low, column
            assert high is None or values.max() <= high, column


def null_cells(frame: pl.DataFrame, columns) -> int:
    return frame.select(columns).null_count().sum_horizontal().item()


def assert_same_until(before: pl.DataFrame, after: pl.DataFrame, cutoff: datetime) -> None:
    assert_frame_equal(before.filter(pl.col("ts") <= cutoff), after.filter(pl.col("ts") <= cutoff))


def perturb_after(frame: pl.DataFrame, cutoff: datetime, columns: list[str]) -> pl.DataFrame:
    """Scale ``columns`` of the rows after ``cutoff`` by random factors (a different future)."""
    factor = pl.Series(np.random.default_rng(99).uniform(0.5, 1.5, frame.height))
    later = pl.col("ts") > cutoff
    return frame.with_columns(pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c))
                              for c in columns)


def test_order_flow_shape_bounds_and_reference_values():
    bars = make_bars(random_walk(400, 1), volume=np.random.default_rng(2).uniform(0, 2e3, 400))
    frame = order_flow.build(bars, FeatureInputs("A"), sigma_window=30, vpin_window=40)
    assert_shape(frame, order_flow, 400)
    assert_bounds(frame, order_flow.BOUNDS, warmup=30 + 40 - 1)
    assert null_cells(frame.slice(69), order_flow.FEATURES) == 0
    assert frame["vpin"].slice(0, 69).is_null().all()
    # The last row against a plain numpy/scipy reference of BVC and VPIN.
    ret = np.diff(np.log(bars["close"].to_numpy()))
    sigma = np.array([ret[i - 29:i + 1].std(ddof=1) for i in range(359, 399)])
    buy = norm.cdf(ret[359:399] / sigma)
    volume = bars["volume"].to_numpy()[360:400]
    assert frame["bvc_buy_frac"][-1] == pytest.approx(buy[-1], rel=1e-9)
    assert frame["vpin"][-1] == pytest.approx((volume * np.abs(2 * buy - 1)).sum() / volume.sum(),
                                              rel=1e-9)


def test_bvc_buys_on_up_moves_and_ofi_follows_the_close():
    close = random_walk(300, 3)
    frame = order_flow.build(make_bars(close), FeatureInputs("A")).slice(50)
    up = frame["ret_1"] > 0
    assert ((frame["bvc_buy_frac"] > 0.5) == up).all()
    rising = make_bars(100.0 * 1.01 ** np.arange(100) * (1 + 0.001 * (np.arange(100) % 2)))
    flows = order_flow.build(rising, FeatureInputs("A")).slice(99)
    assert flows["bvc_imbalance"].item() > 0.3
    assert flows["ofi"].item() > 0.0


def test_order_flow_zero_volume_and_flat_bars():
    bars = make_bars(np.full(120, 50.0), volume=np.zeros(120))
    frame = order_flow.build(bars.with_columns(high=pl.col("close"), low=pl.col("close")),
                             FeatureInputs("A"))
    assert frame["bvc_buy_frac"].slice(50).to_list() == [0.5] * 70  # flat: no side
    for column in ("vpin", "bvc_imbalance", "ofi", "amihud_log"):  # no volume: no ratio
        assert frame[column].is_null().all()


def test_order_flow_has_no_look_ahead():
    bars = make_bars(random_walk(300, 4))
    cutoff = bars["ts"][200]
    assert_same_until(order_flow.build(bars, FeatureInputs("A")),
                      order_flow.build(perturb_after(bars, cutoff, PRICES), FeatureInputs("A")),
                      cutoff)


def correlated_pair(n: int, beta: float = 1.5, rho: float = 0.8, seed: int = 5):
    """Closes of a market and of an asset with the given beta and return correlation."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 0.01, n)
    noise_scale = beta * 0.01 * np.sqrt(1.0 / rho**2 - 1.0)
    asset = beta * market + rng.normal(0.0, noise_scale, n)
    return 100.0 * np.exp(np.cumsum(asset)), 100.0 * np.exp(np.cumsum(market))


def test_cross_asset_finds_planted_correlation_and_beta():
    asset, market = correlated_pair(2001)
    bars = make_bars(asset, "A")
    panel = pl.concat([bars, make_bars(market, "M")])
    frame = cross_asset.build(bars, FeatureInputs("A", panel=panel), corr_window=2000)
    assert_shape(frame, cross_asset, 2001)
    # One window of 2000 returns: standard errors (1 - rho^2) / sqrt(n) = 0.008 for the
    # correlation and 1.125 / sqrt(n) = 0.025 for the beta; tolerances are about 4 of them.
    assert frame["corr_mkt"][-1] == pytest.approx(0.8, abs=0.03)
    assert frame["beta_mkt"][-1] == pytest.approx(1.5, abs=0.1)
    x, y = np.diff(np.log(asset)), np.diff(np.log(market))
    assert frame["corr_mkt"][-1] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
    assert frame["beta_mkt"][-1] == pytest.approx(np.polyfit(y, x, 1)[0], rel=1e-9)
    assert frame["universe_corr"][-1] == pytest.approx(frame["corr_mkt"][-1], rel=1e-12)


def test_cross_asset_bounds_and_rank_of_three_trends():
    noise = [random_walk(300, seed, 0.002) for seed in (6, 7, 8)]
    closes = [n * np.exp(drift * np.arange(300)) for n, drift in zip(noise, (0.01, 0.0, -0.01),
                                                                   strict=True)]
    panel = pl.concat([make_bars(c, s) for c, s in zip(closes, "ABC", strict=True)])
    for symbol, rank in (("A", 1.0), ("B", 0.5), ("C", 0.0)):
        bars = panel.filter(pl.col("symbol") == symbol)
        frame = cross_asset.build(bars, FeatureInputs(symbol, panel=panel))
        assert_bounds(frame, cross_asset.BOUNDS, warmup=60)
        assert (frame["rs_rank"].slice(20) == rank).all()
    assert (frame["rel_strength"].slice(20) < 0).all()


def test_cross_asset_uses_only_matched_timestamps():
    bars = make_bars(random_walk(100, 9), "A")
    other = make_bars(random_walk(100, 10), "B")
    panel = pl.concat([bars, other.filter(pl.col("ts") != other["ts"][50])])
    frame = cross_asset.build(bars, FeatureInputs("A", panel=panel), momentum_window=5)
    missing = frame["rel_strength"].is_null()
    assert missing.slice(50, 6).to_list() == [True, False, False, False, False, True]


def test_cross_asset_refuses_a_panel_without_another_asset():
    bars = make_bars(random_walk(50, 11), "A")
    for panel in (None, bars):
        with pytest.raises(ValueError, match="two or more symbols"):
            cross_asset.build(bars, FeatureInputs("A", panel=panel))


def test_cross_asset_has_no_look_ahead():
    asset, market = correlated_pair(300)
    panel = pl.concat([make_bars(asset, "A"), make_bars(market, "M")])
    cutoff = panel["ts"][200]
    before, after = (cross_asset.build(frame.filter(pl.col("symbol") == "A"),
                                       FeatureInputs("A", panel=frame))
                     for frame in (panel, perturb_after(panel, cutoff, PRICES)))
    assert_same_until(before, after, cutoff)


def sentiment_table(n: int, seed: int, with_count: bool = True) -> pl.DataFrame:
    """Rows at random hours over the first n days, scores in [-1, 1]."""
    rng = np.random.default_rng(seed)
    hours = np.sort(rng.choice(24 * n, 3 * n, replace=False))
    table = pl.DataFrame({"ts": [START + timedelta(hours=int(h)) for h in hours],
                          "score": rng.uniform(-1.0, 1.0, hours.size)})
    return table.with_columns(count=pl.lit(rng.integers(1, 5, hours.size).astype(float))) \
        if with_count else table


def test_sentiment_shape_and_bounds():
    bars = make_bars(random_walk(200, 12))
    for with_count in (True, False):
        table = sentiment_table(200, 13, with_count)
        frame = sentiment.build(bars, FeatureInputs("A", "crypto", sentiment=table))
        assert_shape(frame, sentiment, 200)
        assert_bounds(frame, sentiment.BOUNDS, warmup=21)
        assert null_cells(frame, sentiment.VIX_FEATURES) == 800


def test_sentiment_never_sees_a_row_stamped_after_the_bar():
    bars = make_bars(np.full(10, 100.0))
    bar_ts = bars["ts"]
    table = pl.DataFrame({"ts": [bar_ts[2], bar_ts[5] + timedelta(microseconds=1),
                                 bar_ts[5] + timedelta(hours=3)],
                          "score": [-1.0, 1.0, 0.0], "count": [1.0, 3.0, 1.0]})
    frame = sentiment.build(bars, FeatureInputs("A", "crypto", sentiment=table))
    assert frame["sent_score"].to_list()[:7] == [None, None, -1.0, -1.0, -1.0, -1.0, 0.75]
    assert frame["sent_staleness"].to_list()[:8] == [None, None, 0, 1, 2, 3, 0, 1]
    assert frame["sent_items"][6] == pytest.approx(np.log1p(5.0))


def test_sentiment_refuses_a_table_without_score_and_crypto_without_table():
    bars = make_bars(random_walk(30, 14))
    with pytest.raises(ValueError, match="'score'"):
        sentiment.build(bars, FeatureInputs("A", sentiment=pl.DataFrame({"ts": [START]})))
    with pytest.raises(ValueError, match="VIX-only"):
        sentiment.build(bars, FeatureInputs("A", "crypto"))


def test_vix_columns_on_sp500_and_null_for_crypto():
    bars = load_demo_bars().filter(pl.col("symbol") == "SP500")
    frame = sentiment.build(bars, FeatureInputs("SP500", "equity"))
    covered = frame.filter(pl.col("ts").is_between(datetime(2015, 2, 1), datetime(2018, 12, 31)))
    assert null_cells(covered, sentiment.VIX_FEATURES) == 0
    assert null_cells(frame, sentiment.SCORE_FEATURES) == frame.height * 8
    assert frame.filter(pl.col("ts") < datetime(2014, 1, 4))["vix_log"].is_null().all()
    # A bar stamped 00:00 of D sees VIX(D-1), never VIX(D).
    closes = vix.load()["vix"]
    day = frame.filter(pl.col("ts") == datetime(2016, 6, 24))
    assert day["vix_log"].item() == pytest.approx(np.log(closes[datetime(2016, 6, 23)]))
    crypto = sentiment.build(bars, FeatureInputs("SP500", "crypto",
                                                 sentiment=sentiment_table(100, 15)))
    assert null_cells(crypto, sentiment.VIX_FEATURES) == crypto.height * 4


def test_sentiment_has_no_look_ahead():
    bars = make_bars(random_walk(200, 16))
    table = sentiment_table(200, 17)
    cutoff = bars["ts"][120]
    later = pl.col("ts") > cutoff
    other_future = table.with_columns(score=pl.when(later).then(-pl.col("score"))
                                      .otherwise(pl.col("score")))
    assert_same_until(
        sentiment.build(bars, FeatureInputs("A", sentiment=table)),
        sentiment.build(perturb_after(bars, cutoff, PRICES),
                        FeatureInputs("A", sentiment=perturb_after(other_future, cutoff,
                                                                   ["count"]))),
        cutoff)


def onchain_table(days: int, seed: int) -> pl.DataFrame:
    """Daily rows known at 01:00: addresses growing 1% a day, outflow three times inflow."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"ts": [START + timedelta(days=d, hours=1) for d in range(days)],
                         "active_addresses": 1e5 * np.exp(0.01 * np.arange(days)),
                         "transaction_count": rng.uniform(1e5, 3e5, days),
                         "exchange_inflow": np.full(days, 10.0),
                         "exchange_outflow": np.full(days, 30.0)})


def test_onchain_shape_bounds_and_planted_values():
    hours = 24 * 150
    bars = make_bars(random_walk(hours, 18, 0.002), "BTC", step=timedelta(hours=1))
    frame = onchain.build(bars, FeatureInputs("BTC", "crypto", onchain=onchain_table(150, 19)))
    assert_shape(frame, onchain, hours)
    assert_bounds(frame, onchain.BOUNDS, warmup=24 * 91)
    later = frame.slice(24 * 91)
    assert null_cells(later, onchain.FEATURES) == 0
    assert later["addr_growth_short"].to_numpy() == pytest.approx(0.07)
    assert later["addr_growth_long"].to_numpy() == pytest.approx(0.30)
    assert later["netflow_ratio"].to_numpy() == pytest.approx(0.5)
    # The row of day d is stamped 01:00: the 00:00 bar still carries day d-1's row.
    assert frame["onchain_staleness"].slice(24 * 100, 3).to_list() == [23.0, 0.0, 1.0]


def test_onchain_optional_columns_give_nulls_and_required_ones_errors():
    bars = make_bars(random_walk(120, 20))
    table = onchain_table(120, 21)
    frame = onchain.build(bars, FeatureInputs("A", "crypto", onchain=table.drop("exchange_inflow")))
    assert frame["netflow_ratio"].is_null().all()
    assert frame["tx_z"].slice(91).is_not_null().all()
    with pytest.raises(ValueError, match="transaction_count"):
        onchain.build(bars, FeatureInputs("A", onchain=table.drop("transaction_count")))


def test_onchain_has_no_look_ahead():
    bars = make_bars(random_walk(150, 22))
    table = onchain_table(150, 23)
    cutoff = bars["ts"][110]
    columns = ["active_addresses", "transaction_count", "exchange_inflow"]
    assert_same_until(
        onchain.build(bars, FeatureInputs("A", onchain=table)),
        onchain.build(perturb_after(bars, cutoff, PRICES),
                      FeatureInputs("A", onchain=perturb_after(table, cutoff, columns))),
        cutoff)
