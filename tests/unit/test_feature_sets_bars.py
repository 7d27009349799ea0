"""The bar-only feature sets: columns, warm-ups, bounds, holidays, no look-ahead, sane values.

Real data: the packaged S&P 500 (arch, 1999-2018) and AAPL (bokeh_sampledata, 2000-2013)
daily bars. Sanity of the volatility estimators: simulated geometric Brownian motion bars.
"""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import polars as pl
import pytest
import talib
from polars.testing import assert_frame_equal

from factory.data.sources import load_bokeh_stocks, load_demo_bars, synthetic_bars
from feature_sets import FeatureInputs, feature_bounds, momentum, raw_ohlcv, technical, volatility

SETS = {"raw_ohlcv": raw_ohlcv, "technical": technical, "momentum": momentum,
        "volatility": volatility}
CALENDAR = ["tod_sin", "tod_cos", "dow_sin", "dow_cos", "month_sin", "month_cos",
            "pre_holiday", "post_holiday"]
HORIZONS = (5, 10, 21, 63, 126)
FIRST_VALUE_ROW = {
    "raw_ohlcv": {"ret_1": 1, "open_gap": 1, "high_range": 0, "low_range": 0,
                  "volume_ratio": 19},
    "technical": {"ret_1": 1, "sma_rel": 19, "ema_rel": 19, "wma_rel": 19, "rsi": 14,
                  "macd": 33, "macd_signal": 33, "macd_hist": 33, "bb_pct_b": 19,
                  "bb_width": 19, "stoch_k": 8, "stoch_d": 8, "atr_rel": 14,
                  **dict.fromkeys(CALENDAR, 0)},
    "momentum": {"ret_1": 1, **{k: v for h in HORIZONS for k, v in
                                ((f"mom_{h}", h), (f"acc_{h}", 2 * h), (f"zmom_{h}", max(h, 21)))}},
    "volatility": {"ret_1": 1, "vol_atr": 14, "vol_cc": 20, "vol_parkinson": 19, "vol_gk": 19,
                   "vol_rs": 19, "vol_yz": 20},
}
"""Default parameters: the row of each column's first value (its warm-up length)."""


@pytest.fixture(scope="module")
def sp500() -> pl.DataFrame:
    return load_demo_bars().filter(pl.col("symbol") == "SP500")


@pytest.fixture(scope="module")
def aapl() -> pl.DataFrame:
    return load_bokeh_stocks(("AAPL",))


def _build(name: str, bars: pl.DataFrame, calendar: str = "equity", **params) -> pl.DataFrame:
    return SETS[name].build(bars, FeatureInputs("ANY", calendar), **params)


@pytest.mark.parametrize("name", sorted(SETS))
def test_columns_dtypes_and_warm_up_prefixes(sp500, name):
    frame = _build(name, sp500)
    expected = FIRST_VALUE_ROW[name]
    assert frame.columns == ["ts", *expected]
    assert frame["ts"].equals(sp500["ts"])
    assert all(frame[c].dtype == pl.Float64 for c in expected)
    for column, first in expected.items():
        nulls = frame[column].is_null().to_numpy()
        assert not nulls[first:].any(), f"{column} has a null after its warm-up"
        assert nulls[:first].all(), f"{column} has a value inside its warm-up"


@pytest.mark.parametrize("name", sorted(SETS))
def test_declared_bounds_hold_after_warm_up_on_real_data(sp500, aapl, name):
    bounds = feature_bounds(name)
    assert bounds == SETS[name].BOUNDS
    for bars in (sp500, aapl):
        frame = _build(name, bars).slice(2 * max(HORIZONS))
        assert frame.null_count().sum_horizontal().item() == 0
        for pattern, (low, high) in bounds.items():
            columns = [c for c in frame.columns if re.search(pattern, c)]
            assert columns, f"bound {pattern!r} matches no column"
            for column in columns:
                values = frame[column]
                assert low is None or values.min() >= low, (column, values.min())
                assert high is None or values.max() <= high, (column, values.max())


@pytest.mark.parametrize("name", sorted(SETS))
@pytest.mark.parametrize("cut", [1, 30, 260, 2500])
def test_truncating_the_future_leaves_the_past_unchanged(sp500, name, cut):
    full = _build(name, sp500)
    truncated = _build(name, sp500.head(cut))
    assert_frame_equal(truncated, full.head(cut), rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("name", sorted(SETS))
def test_no_bars_give_no_rows(sp500, name):
    frame = _build(name, sp500.head(0))
    assert frame.height == 0 and frame.columns == ["ts", *FIRST_VALUE_ROW[name]]


def _flags(frame: pl.DataFrame, day: date) -> tuple[float, float]:
    row = frame.filter(pl.col("ts").dt.date() == day)
    return row["pre_holiday"].item(), row["post_holiday"].item()


def test_holiday_flags_surround_regular_nyse_holidays(sp500, aapl):
    spx = _build("technical", sp500)
    assert _flags(spx, date(2015, 12, 24)) == (1.0, 0.0)  # Christmas, a Friday
    assert _flags(spx, date(2015, 12, 28)) == (0.0, 1.0)
    assert _flags(spx, date(2015, 12, 23)) == (0.0, 0.0)
    assert _flags(spx, date(2001, 7, 3)) == (1.0, 0.0)  # Independence Day, a Wednesday
    assert _flags(spx, date(2001, 7, 5)) == (0.0, 1.0)
    assert _flags(_build("technical", aapl), date(2012, 12, 24)) == (1.0, 0.0)
    assert spx["pre_holiday"].sum() == pytest.approx(spx["post_holiday"].sum(), abs=2)


def test_ad_hoc_closures_are_not_flagged_in_advance(sp500):
    spx = _build("technical", sp500)
    assert _flags(spx, date(2001, 9, 10)) == (0.0, 0.0)  # nobody knew of 9/11 on 9/10
    assert _flags(spx, date(2012, 10, 26)) == (0.0, 0.0)  # Hurricane Sandy closure


@pytest.mark.parametrize("calendar", ["crypto", "fx"])
def test_markets_without_exchange_holidays_never_flag_one(sp500, calendar):
    for bars in (sp500, synthetic_bars(n_bars=800, seed=2)):
        frame = _build("technical", bars, calendar=calendar)
        assert frame["pre_holiday"].sum() == frame["post_holiday"].sum() == 0.0


def test_an_unknown_calendar_is_refused(sp500):
    with pytest.raises(ValueError, match="unknown calendar"):
        _build("technical", sp500, calendar="lunar")


def test_calendar_features_encode_the_clock():
    bars = synthetic_bars(n_bars=48, seed=1, start="2024-03-04", freq="1h")  # a Monday
    frame = _build("technical", bars)
    hours = bars["ts"].dt.hour().to_numpy()
    np.testing.assert_allclose(frame["tod_sin"], np.sin(2 * np.pi * hours / 24), atol=1e-12)
    np.testing.assert_allclose(frame["dow_cos"][:24], 1.0)
    np.testing.assert_allclose(frame["month_sin"], np.sin(2 * np.pi * 2 / 12))


def test_technical_forwards_its_parameters_to_the_talib_definitions(sp500):
    params = {"sma_period": 7, "ema_period": 9, "wma_period": 11, "rsi_period": 5,
              "macd_fast": 5, "macd_slow": 35, "macd_signal": 5, "bb_period": 15, "bb_k": 1.5,
              "stoch_fastk": 9, "stoch_slowk": 4, "stoch_slowd": 2, "atr_period": 10}
    frame = _build("technical", sp500, **params)
    h, low, c = (sp500[k].to_numpy() for k in ("high", "low", "close"))
    upper, middle, lower = talib.BBANDS(c, 15, 1.5, 1.5)
    k, d = talib.STOCH(h, low, c, 9, 4, 0, 2, 0)
    expected = {
        "sma_rel": talib.SMA(c, 7) / c - 1, "ema_rel": talib.EMA(c, 9) / c - 1,
        "wma_rel": talib.WMA(c, 11) / c - 1, "rsi": talib.RSI(c, 5),
        "macd": talib.MACD(c, 5, 35, 5)[0] / c, "macd_hist": talib.MACD(c, 5, 35, 5)[2] / c,
        "bb_pct_b": (c - lower) / (upper - lower), "bb_width": (upper - lower) / middle,
        "stoch_k": k, "stoch_d": d, "atr_rel": talib.ATR(h, low, c, 10) / c,
    }
    for column, values in expected.items():
        ours = frame[column].to_numpy().astype(float)
        np.testing.assert_allclose(ours, values, rtol=1e-8, atol=1e-12, err_msg=column)


def test_raw_ohlcv_keeps_its_meaning(aapl):
    frame = _build("raw_ohlcv", aapl, volume_window=10)
    o, h, low, c, v = (aapl[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    np.testing.assert_allclose(frame["open_gap"].to_numpy()[1:], np.log(o[1:] / c[:-1]))
    np.testing.assert_allclose(frame["high_range"], np.log(h / c))
    np.testing.assert_allclose(frame["low_range"], np.log(low / c))
    mean_volume = np.convolve(v, np.ones(10) / 10, mode="valid")
    np.testing.assert_allclose(frame["volume_ratio"].to_numpy()[9:],
                               np.log((v[9:] + 1) / (mean_volume + 1)))


def test_momentum_acceleration_and_scaling_match_their_definitions(aapl):
    frame = _build("momentum", aapl, horizon_1=3, horizon_5=200, vol_window=30)
    log_c = np.log(aapl["close"].to_numpy())
    returns = np.diff(log_c)
    for h in (3, 10, 21, 63, 200):
        mom = np.full(log_c.size, np.nan)
        mom[h:] = log_c[h:] - log_c[:-h]
        acc = mom - np.concatenate((np.full(h, np.nan), mom[:-h]))
        np.testing.assert_allclose(frame[f"mom_{h}"].to_numpy(), mom, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(frame[f"acc_{h}"].to_numpy(), acc, rtol=1e-9, atol=1e-12)
    t = 500
    sigma = returns[t - 30:t].std(ddof=1)
    assert frame["zmom_63"][t] == pytest.approx(frame["mom_63"][t] / (sigma * np.sqrt(63)))


def _gbm_bars(sigma: float, overnight: float, n_bars: int = 3000, steps: int = 2000):
    """Bars of a driftless Brownian log price seen at ``steps`` points per bar, plus gaps."""
    rng = np.random.default_rng(11)
    paths = np.cumsum(rng.normal(0.0, sigma / np.sqrt(steps), (n_bars, steps)), axis=1)
    gaps = rng.normal(0.0, overnight, n_bars)
    opens = np.concatenate(([0.0], np.cumsum(gaps[1:] + paths[:-1, -1])))
    prices = {"open": opens, "high": opens + np.maximum(paths.max(axis=1), 0.0),
              "low": opens + np.minimum(paths.min(axis=1), 0.0), "close": opens + paths[:, -1]}
    ts = np.datetime64("2001-01-01", "us") + np.arange(n_bars) * np.timedelta64(1, "D")
    return pl.DataFrame({"symbol": "GBM", "ts": ts, "volume": 1.0,
                         **{k: 100.0 * np.exp(v) for k, v in prices.items()}})


@pytest.mark.parametrize("overnight", [0.0, 0.01])
def test_volatility_estimators_recover_the_simulated_volatility(overnight):
    """Per-bar estimates, RMS over all windows, within 5% of the truth.

    Squared estimates average to the variance they estimate (unbiased), so their RMS over
    ~3000 windows has a sampling error near 1.3% for close-to-close and below 1% for the range
    estimators; seeing the path at 2000 points per bar misses part of the true range (about
    -2% for Parkinson, -3% for Garman-Klass / Rogers-Satchell). Range-only estimators see
    intraday volatility, close-to-close and Yang-Zhang also the overnight gaps.
    """
    sigma = 0.01
    frame = _build("volatility", _gbm_bars(sigma, overnight)).drop_nulls()
    rms = {c: float(np.sqrt((frame[c] ** 2).mean())) for c in frame.columns if c != "ts"}
    total = np.hypot(sigma, overnight)
    for column, truth in (("vol_cc", total), ("vol_yz", total), ("vol_parkinson", sigma),
                          ("vol_gk", sigma), ("vol_rs", sigma)):
        assert rms[column] == pytest.approx(truth, rel=0.05), column


@pytest.mark.parametrize(("name", "params", "message"), [
    ("momentum", {"horizon_2": 5}, "must all differ"),
    ("momentum", {"vol_window": 1}, "vol_window"),
    ("technical", {"bb_k": 0.0}, "bb_k"),
    ("technical", {"macd_fast": 30}, "fast < slow"),
    ("volatility", {"window": 1}, "window"),
    ("raw_ohlcv", {"volume_window": 2.5}, "volume_window"),
])
def test_bad_parameters_are_refused(sp500, name, params, message):
    with pytest.raises(ValueError, match=message):
        _build(name, sp500, **params)


def test_whole_float_parameters_are_accepted(sp500):
    assert_frame_equal(_build("volatility", sp500, window=20.0, atr_period=14.0),
                       _build("volatility", sp500))
