"""Volatility estimators over one window: ATR, close-to-close and range-based.

Columns (all per-bar standard deviations of log returns, except ``vol_atr``):

- ``vol_atr``: Wilder's average true range over ``atr_period`` bars divided by the close
  (TA-Lib's ATR: SMA-seeded, alpha = 1/n);
- ``vol_cc``: close-to-close, the sample standard deviation (ddof=1) of the last ``window``
  one-bar log returns (their mean subtracted);
- ``vol_parkinson``: Parkinson (1980), ``sqrt(mean(ln(H/L)^2) / (4 ln 2))``;
- ``vol_gk``: Garman-Klass (1980), ``sqrt(mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2))``;
- ``vol_rs``: Rogers-Satchell (1991), ``sqrt(mean(ln(H/C) ln(H/O) + ln(L/C) ln(L/O)))``,
  unbiased under drift;
- ``vol_yz``: Yang-Zhang (2000), overnight variance + k open-to-close variance + (1-k)
  Rogers-Satchell, ``k = 0.34 / (1.34 + (n+1)/(n-1))``, the first two sample variances
  (ddof=1).

Range-based means are plain means over ``window`` bars (no ddof: each term is already a
variance estimate of one bar). The estimators assume ``low <= open, close <= high``.

NOT annualised: every value is per bar (a daily series gives daily volatility). Annualising
needs the symbol's bar frequency and calendar, which the factory applies where it annualises
(never by counting bars here).

Every column at bar t reads bars ``<= t`` only; warm-up rows are null (``window`` rows for the
estimators that need the previous close, ``window - 1`` for the others, ``atr_period`` for
``vol_atr``). Columns are Float64, NaN is null.
"""

from __future__ import annotations

import polars as pl

from feature_sets import indicators as ind
from feature_sets.inputs import FeatureInputs

BOUNDS: dict[str, tuple[float | None, float | None]] = {r"^vol_": (0.0, None)}
"""Volatilities are non-negative."""


def build(
    bars: pl.DataFrame, inputs: FeatureInputs, window: int = 20, atr_period: int = 14
) -> pl.DataFrame:
    """Per-bar volatility estimates for one asset.

    Parameters
    ----------
    bars
        One asset's OHLCV bars sorted by ``ts``.
    inputs
        Unused: this set reads the bars only.
    window
        Bars in every estimator except the ATR (at least 2: sample variances).
    atr_period
        Wilder smoothing period of the ATR.

    Returns
    -------
    pl.DataFrame
        ``ts``, ``ret_1``, ``vol_atr``, ``vol_cc``, ``vol_parkinson``, ``vol_gk``, ``vol_rs``,
        ``vol_yz``.

    Raises
    ------
    ValueError
        On a non-integral period, ``window < 2`` or ``atr_period < 1``.
    """
    n = ind.as_window("window", window, 2)
    prices = pl.col("open"), pl.col("high"), pl.col("low"), pl.col("close")
    open_, high, low, close = prices
    return ind.select_features(bars, {
        "ret_1": ind.log_return(close),
        "vol_atr": ind.atr(high, low, close, ind.as_window("atr_period", atr_period)) / close,
        "vol_cc": ind.close_to_close_vol(close, n),
        "vol_parkinson": ind.parkinson_vol(high, low, n),
        "vol_gk": ind.garman_klass_vol(*prices, n),
        "vol_rs": ind.rogers_satchell_vol(*prices, n),
        "vol_yz": ind.yang_zhang_vol(*prices, n),
    })
