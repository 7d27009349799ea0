"""Multi-horizon momentum, its acceleration, and volatility-scaled momentum.

For each horizon h (bars, five parameters ``horizon_1`` .. ``horizon_5``):

- ``mom_h``: the log return over h bars, ``ln(C_t / C_{t-h})``;
- ``acc_h``: its change over the same h bars, ``mom_h(t) - mom_h(t-h)``
  (``= ln C_t - 2 ln C_{t-h} + ln C_{t-2h}``): is the trend speeding up or fading;
- ``zmom_h``: ``mom_h / (sigma * sqrt(h))``, momentum in units of its own noise, where sigma
  is the sample standard deviation (ddof=1) of the last ``vol_window`` one-bar log returns.
  Under a driftless random walk it is roughly standard normal, so horizons and assets
  compare on one scale.

Every column at bar t reads bars ``<= t`` only; warm-up rows are null (``acc_h`` needs 2h bars
of history). Columns are Float64, NaN is null (a zero-volatility window gives null
``zmom_h``). Nothing is annualised; log returns are unbounded, so no bounds are declared.
"""

from __future__ import annotations

import polars as pl

from feature_sets.indicators import as_window, close_to_close_vol, log_return, select_features
from feature_sets.inputs import FeatureInputs

BOUNDS: dict[str, tuple[float | None, float | None]] = {}
"""Log returns and their changes are unbounded."""


def build(
    bars: pl.DataFrame,
    inputs: FeatureInputs,
    horizon_1: int = 5,
    horizon_2: int = 10,
    horizon_3: int = 21,
    horizon_4: int = 63,
    horizon_5: int = 126,
    vol_window: int = 21,
) -> pl.DataFrame:
    """Momentum, acceleration and volatility-scaled momentum at five horizons.

    Parameters
    ----------
    bars
        One asset's OHLCV bars sorted by ``ts``.
    inputs
        Unused: this set reads the bars only.
    horizon_1, horizon_2, horizon_3, horizon_4, horizon_5
        Momentum horizons in bars, all different (they name the columns: ``mom_21``).
    vol_window
        Bars of one-bar returns in the volatility that scales ``zmom_h``.

    Returns
    -------
    pl.DataFrame
        ``ts``, ``ret_1``, then ``mom_h``, ``acc_h``, ``zmom_h`` per horizon, shortest first.

    Raises
    ------
    ValueError
        On a non-integral or non-positive horizon, repeated horizons, or ``vol_window < 2``.
    """
    given = [horizon_1, horizon_2, horizon_3, horizon_4, horizon_5]
    horizons = sorted(as_window(f"horizon_{i}", h) for i, h in enumerate(given, start=1))
    if len(set(horizons)) < len(horizons):
        raise ValueError(f"momentum horizons must all differ, got {given}")
    close = pl.col("close")
    sigma = close_to_close_vol(close, as_window("vol_window", vol_window, 2))
    features = {"ret_1": log_return(close)}
    for h in horizons:
        momentum = log_return(close, h)
        features[f"mom_{h}"] = momentum
        features[f"acc_{h}"] = momentum - momentum.shift(h)
        features[f"zmom_{h}"] = momentum / (sigma * h**0.5)
    return select_features(bars, features)
