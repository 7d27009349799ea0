"""Raw OHLCV, made comparable across time and assets.

Prices become log ratios (so a model sees moves, not price levels): ``ret_1`` is
``ln(C_t / C_{t-1})``, ``open_gap`` is ``ln(O_t / C_{t-1})`` (the overnight gap), and
``high_range`` / ``low_range`` are ``ln(H_t / C_t)`` (>= 0) and ``ln(L_t / C_t)`` (<= 0), how far
the bar ranged above and below where it closed. Volume becomes ``volume_ratio``,
``ln((V_t + 1) / (mean(V_{t-w+1..t}) + 1))``, its log ratio to the trailing mean volume of
``volume_window`` bars including bar t (index volume grew tenfold over 1999-2018, its ratio
did not; the +1 keeps zero-volume bars finite).

Every column at bar t reads bars ``<= t`` only; the first bar (``ret_1``, ``open_gap``) and the
first ``volume_window - 1`` bars (``volume_ratio``) are null. Columns are Float64, NaN is null.
Nothing is annualised.
"""

from __future__ import annotations

import polars as pl

from feature_sets.indicators import as_window, log_return, select_features
from feature_sets.inputs import FeatureInputs

BOUNDS: dict[str, tuple[float | None, float | None]] = {
    r"^high_range$": (0.0, None),
    r"^low_range$": (None, 0.0),
}
"""A close inside its bar's range: high at or above it, low at or below it."""


def build(bars: pl.DataFrame, inputs: FeatureInputs, volume_window: int = 20) -> pl.DataFrame:
    """Log returns, normalised prices and normalised volume for one asset.

    Parameters
    ----------
    bars
        One asset's OHLCV bars sorted by ``ts``.
    inputs
        Unused: this set reads the bars only.
    volume_window
        Bars in the trailing mean volume that ``volume_ratio`` divides by.

    Returns
    -------
    pl.DataFrame
        ``ts``, ``ret_1``, ``open_gap``, ``high_range``, ``low_range``, ``volume_ratio``.
    """
    window = as_window("volume_window", volume_window)
    close, volume = pl.col("close"), pl.col("volume")
    return select_features(bars, {
        "ret_1": log_return(close),
        "open_gap": (pl.col("open") / close.shift(1)).log(),
        "high_range": (pl.col("high") / close).log(),
        "low_range": (pl.col("low") / close).log(),
        "volume_ratio": ((volume + 1.0) / (volume.rolling_mean(window) + 1.0)).log(),
    })
