"""The polars indicators agree with TA-Lib itself on real daily bars.

Each indicator of ``feature_sets.indicators`` is compared with ``talib`` on the packaged S&P
500 (arch, 1999-2018) and AAPL (bokeh_sampledata, 2000-2013, unadjusted, splits included)
bars: the warm-up (rows before the first value) must be the same length, and every row
both define must agree to 1e-6, relative or absolute; at extreme price scales the
scale-free outputs agree to 1e-6 relative. The documented departure (flat windows read a
neutral 50 where TA-Lib says 0) is pinned down on a flat series.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import talib

from factory.data.sources import load_bokeh_stocks, load_demo_bars
from feature_sets import indicators as ind

TOLERANCE = 1e-6
OPEN, HIGH, LOW, CLOSE = (pl.col(c) for c in ("open", "high", "low", "close"))


@pytest.fixture(scope="module", params=["SP500", "AAPL"])
def bars(request) -> pl.DataFrame:
    if request.param == "SP500":
        return load_demo_bars().filter(pl.col("symbol") == "SP500")
    return load_bokeh_stocks(("AAPL",))


def _arrays(bars: pl.DataFrame) -> dict[str, np.ndarray]:
    return {c: bars[c].to_numpy().astype(np.float64) for c in ("open", "high", "low", "close")}


def _ours(bars: pl.DataFrame, expr: pl.Expr, **intermediates: pl.Expr) -> np.ndarray:
    frame = bars.with_columns(**intermediates) if intermediates else bars
    return frame.select(expr.cast(pl.Float64)).to_series().to_numpy().astype(np.float64)


def assert_agrees(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Same warm-up, same defined rows, values within ``TOLERANCE`` (relative or absolute)."""
    assert np.isnan(theirs).any() and not np.isnan(theirs).all(), "a test needs a warm-up"
    assert np.argmax(~np.isnan(ours)) == np.argmax(~np.isnan(theirs)), "warm-up lengths differ"
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    both = ~np.isnan(theirs)
    np.testing.assert_allclose(ours[both], theirs[both], rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("n", [2, 5, 20, 50, 200])
def test_moving_averages_match_talib(bars, n):
    close = _arrays(bars)["close"]
    assert_agrees(_ours(bars, ind.sma(CLOSE, n)), talib.SMA(close, timeperiod=n))
    assert_agrees(_ours(bars, ind.ema(CLOSE, n)), talib.EMA(close, timeperiod=n))
    assert_agrees(_ours(bars, ind.wma(CLOSE, n)), talib.WMA(close, timeperiod=n))


@pytest.mark.parametrize("n", [2, 7, 14, 30])
def test_rsi_matches_talib(bars, n):
    assert_agrees(_ours(bars, ind.rsi(CLOSE, n)), talib.RSI(_arrays(bars)["close"], timeperiod=n))


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (3, 10, 16)])
def test_macd_line_signal_and_histogram_match_talib(bars, fast, slow, signal):
    expected = talib.MACD(_arrays(bars)["close"], fastperiod=fast, slowperiod=slow,
                          signalperiod=signal)
    line = ind.macd_line(CLOSE, fast, slow)
    for ours, theirs in zip(ind.macd(pl.col("line"), signal), expected, strict=True):
        assert_agrees(_ours(bars, ours, line=line), theirs)


@pytest.mark.parametrize(("n", "k"), [(20, 2.0), (10, 1.5), (50, 2.5)])
def test_bollinger_bands_match_talib(bars, n, k):
    expected = talib.BBANDS(_arrays(bars)["close"], timeperiod=n, nbdevup=k, nbdevdn=k, matype=0)
    for ours, theirs in zip(ind.bollinger(CLOSE, n, k, k), expected, strict=True):
        assert_agrees(_ours(bars, ours), theirs)


@pytest.mark.parametrize(("fastk", "slowk", "slowd"), [(5, 3, 3), (14, 3, 3), (9, 1, 4)])
def test_stochastic_matches_talib(bars, fastk, slowk, slowd):
    a = _arrays(bars)
    expected = talib.STOCH(a["high"], a["low"], a["close"], fastk_period=fastk,
                           slowk_period=slowk, slowk_matype=0, slowd_period=slowd,
                           slowd_matype=0)
    fast_k = ind.stochastic_fast_k(HIGH, LOW, CLOSE, fastk)
    for ours, theirs in zip(ind.stochastic(pl.col("fast_k"), slowk, slowd), expected, strict=True):
        assert_agrees(_ours(bars, ours, fast_k=fast_k), theirs)


@pytest.mark.parametrize("n", [1, 5, 14, 30])
def test_true_range_and_atr_match_talib(bars, n):
    a = _arrays(bars)
    assert_agrees(_ours(bars, ind.true_range(HIGH, LOW, CLOSE)),
                  talib.TRANGE(a["high"], a["low"], a["close"]))
    assert_agrees(_ours(bars, ind.atr(HIGH, LOW, CLOSE, n)),
                  talib.ATR(a["high"], a["low"], a["close"], timeperiod=n))


@pytest.mark.parametrize("scale", [1e-9, 1e6])
def test_agreement_does_not_depend_on_the_price_scale(scale):
    """A coin quoted at 1e-9 or an index at 1e6: oscillators agree to 1e-6 relative."""
    rng = np.random.default_rng(5)
    close = scale * np.exp(np.cumsum(rng.normal(0.0, 0.01, 500)))
    wiggle = np.abs(rng.normal(0.0, 0.005, 500))
    high, low = close * (1 + wiggle), close * (1 - wiggle)
    frame = pl.DataFrame({"close": close, "high": high, "low": low})
    pairs = [(ind.rsi(CLOSE, 14), talib.RSI(close, 14)),
             (ind.stochastic_fast_k(HIGH, LOW, CLOSE, 5), talib.STOCHF(high, low, close)[0]),
             (ind.bollinger(CLOSE, 20)[0] / CLOSE, talib.BBANDS(close, 20)[0] / close),
             (ind.atr(HIGH, LOW, CLOSE, 14) / CLOSE, talib.ATR(high, low, close, 14) / close)]
    for ours, theirs in pairs:
        both = ~np.isnan(theirs)
        np.testing.assert_allclose(_ours(frame, ours)[both], theirs[both], rtol=TOLERANCE)


def test_flat_windows_read_neutral_50_where_talib_reads_0():
    flat = pl.DataFrame({"high": [10.0] * 30, "low": [10.0] * 30, "close": [10.0] * 30})
    c = flat["close"].to_numpy()
    assert talib.RSI(c, timeperiod=14)[-1] == 0.0
    assert talib.STOCH(c, c, c)[0][-1] == 0.0
    assert _ours(flat, ind.rsi(CLOSE, 14))[-1] == 50.0
    fast_k = ind.stochastic_fast_k(HIGH, LOW, CLOSE, 5)
    k, d = ind.stochastic(pl.col("fast_k"), 3, 3)
    assert _ours(flat, k, fast_k=fast_k)[-1] == _ours(flat, d, fast_k=fast_k)[-1] == 50.0


def test_macd_refuses_a_fast_period_not_below_the_slow_one():
    with pytest.raises(ValueError, match="fast < slow"):
        ind.macd_line(CLOSE, 26, 12)


@pytest.mark.parametrize("value", [0, 2.5, True, -3])
def test_a_window_must_be_a_positive_whole_number(value):
    with pytest.raises(ValueError, match="whole number"):
        ind.as_window("rsi_period", value)
