"""Technical indicators, computed by TA-Lib itself so definitions match the industry's.

Every indicator is causal (TA-Lib reads only past bars) and is expressed scale-free
(ratios to price, or bounded oscillators) so one model can pool assets and decades.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import talib


def build(
    bars: pl.DataFrame,
    rsi_period: int = 14,
    atr_period: int = 14,
    bbands_period: int = 20,
    adx_period: int = 14,
    roc_period: int = 10,
) -> pl.DataFrame:
    """Return ``ts``, ``ret_1`` and eight indicators (RSI, MACD, ATR, %B, ADX, ROC, %K, MFI)."""
    high, low, c, volume = (bars[col].to_numpy().astype(np.float64) for col in
                            ("high", "low", "close", "volume"))
    _macd, _signal, macd_hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    upper, _middle, lower = talib.BBANDS(c, timeperiod=bbands_period, nbdevup=2, nbdevdn=2)
    slowk, _slowd = talib.STOCH(high, low, c)
    width = upper - lower
    features = {
        "ret_1": np.log(c / np.concatenate(([np.nan], c[:-1]))),
        "rsi": talib.RSI(c, timeperiod=rsi_period) / 100.0 - 0.5,
        "macd_hist": macd_hist / c,
        "atr_ratio": talib.ATR(high, low, c, timeperiod=atr_period) / c,
        "bb_percent_b": np.divide(c - lower, width, out=np.full_like(c, np.nan), where=width > 0),
        "adx": talib.ADX(high, low, c, timeperiod=adx_period) / 100.0,
        "roc": talib.ROC(c, timeperiod=roc_period) / 100.0,
        "stoch_k": slowk / 100.0 - 0.5,
        "mfi": talib.MFI(high, low, c, volume, timeperiod=rsi_period) / 100.0 - 0.5,
    }
    return pl.DataFrame({"ts": bars["ts"], **features}).with_columns(
        pl.exclude("ts").cast(pl.Float64).fill_nan(None)
    )
