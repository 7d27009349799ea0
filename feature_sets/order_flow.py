"""Order flow estimated from bars: bulk-volume classification, VPIN, an order-flow imbalance
proxy and Amihud illiquidity.

Source: the asset's OHLCV bars only. Trades and quotes are not in the lake, so every measure
here is the bar-based approximation of its tick-data original; ``inputs`` is not read.

Conventions
-----------
- ``ret_1``: log(close_t / close_{t-1}).
- Bulk-volume classification (BVC; Easley, López de Prado & O'Hara 2012, "Flow toxicity and
  liquidity in a high-frequency world"): the buy fraction of bar t's volume is
  ``b_t = Phi(r_t / sigma_t)``, with ``Phi`` the standard NORMAL cdf (the 2012 paper's choice),
  ``r_t`` the bar's log return (scale-free; the paper uses price changes) and ``sigma_t`` the
  sample standard deviation of the log returns of the ``sigma_window`` bars ending at t.
  ``sigma_t == 0`` (flat prices) gives ``b_t = 0.5``: no move, no side.
- ``bvc_buy_frac``: ``b_t``, in [0, 1].
- ``bvc_imbalance``: ``sum V (2b - 1) / sum V`` over the ``vpin_window`` bars ending at t: the
  signed BVC imbalance, in [-1, 1].
- ``vpin``: ``sum |V_buy - V_sell| / sum V = sum V |2b - 1| / sum V`` over the same bars, in
  [0, 1]. This is the BAR-BASED approximation: time bars stand in for the paper's equal-volume
  buckets, so a bar weighs by its volume instead of being split across buckets.
- ``ofi``: order-flow imbalance proxy. Each bar's volume is signed by where it closed in its
  range, ``V (close - open) / (high - low)`` (clipped to [-V, V]; 0 when high == low: no range,
  no direction), summed over the ``ofi_window`` bars ending at t and divided by their summed
  volume, in [-1, 1].
- ``amihud_log``: log of Amihud (2002) illiquidity as a ratio of sums over the
  ``amihud_window`` bars ending at t, ``log(sum |r| / sum close * V)`` (not the mean of
  per-bar ratios, so that a zero-volume bar divides nothing by zero).

Zero volume: a bar with V = 0 adds nothing to any sum; a window whose volume sums to 0 gives
null ``bvc_imbalance``, ``vpin``, ``ofi`` and ``amihud_log``; ``amihud_log`` is also null when
the window's returns are all 0. Non-finite values (NaN, inf) become null.

Point in time: every column at bar t reads bars t-w+1 .. t only (trailing windows). Warm-up
rows are null, never filled from the future: ``bvc_buy_frac`` from row ``sigma_window``,
``vpin`` and ``bvc_imbalance`` from row ``sigma_window + vpin_window - 1``, ``ofi`` from row
``ofi_window - 1``, ``amihud_log`` from row ``amihud_window``.
"""

from __future__ import annotations

import polars as pl
from scipy.special import ndtr

from feature_sets.indicators import finite_only, log_return
from feature_sets.inputs import FeatureInputs

BOUNDS: dict[str, tuple[float | None, float | None]] = {
    r"^bvc_buy_frac$": (0.0, 1.0),
    r"^vpin$": (0.0, 1.0),
    r"^bvc_imbalance$": (-1.0, 1.0),
    r"^ofi$": (-1.0, 1.0),
}
"""Column regex -> inclusive (low, high) bounds after warm-up."""

FEATURES: tuple[str, ...] = ("ret_1", "bvc_buy_frac", "bvc_imbalance", "vpin", "ofi",
                             "amihud_log")


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """``numerator / denominator`` where the denominator is positive, else null."""
    return pl.when(denominator > 0).then(numerator / denominator)


def build(
    bars: pl.DataFrame,
    inputs: FeatureInputs,
    sigma_window: int = 50,
    vpin_window: int = 50,
    ofi_window: int = 20,
    amihud_window: int = 20,
) -> pl.DataFrame:
    """Order-flow features of one asset's bars.

    Parameters
    ----------
    bars
        One asset's bars (``ts``, OHLCV), sorted by ``ts``.
    inputs
        The asset's other inputs; not read (bars are the only source).
    sigma_window
        Bars in the trailing return standard deviation that scales BVC (at least 2).
    vpin_window
        Bars summed by ``vpin`` and ``bvc_imbalance``.
    ofi_window
        Bars summed by ``ofi``.
    amihud_window
        Bars summed by ``amihud_log``.

    Returns
    -------
    pl.DataFrame
        ``ts`` and the Float64 columns ``FEATURES``, one row per bar.

    Raises
    ------
    ValueError
        If a window is too short.
    """
    if sigma_window < 2 or min(vpin_window, ofi_window, amihud_window) < 1:
        raise ValueError("order_flow needs sigma_window >= 2 and the other windows >= 1, got "
                         f"{sigma_window}, {vpin_window}, {ofi_window}, {amihud_window}")
    close, volume = pl.col("close"), pl.col("volume").cast(pl.Float64)
    ret = log_return(close)
    sigma = ret.rolling_std(sigma_window)
    z = pl.when(sigma > 0).then(ret / sigma).when(sigma == 0).then(0.0)
    frame = bars.with_columns(ret_1=ret, z=z)
    frame = frame.with_columns(
        bvc_buy_frac=pl.Series(ndtr(frame["z"].to_numpy())).fill_nan(None))

    side = 2.0 * pl.col("bvc_buy_frac") - 1.0
    flow_volume = volume.rolling_sum(vpin_window)
    price_range = pl.col("high") - pl.col("low")
    location = (pl.when(price_range > 0)
                .then(((close - pl.col("open")) / price_range).clip(-1.0, 1.0))
                .otherwise(0.0))
    abs_returns = pl.col("ret_1").abs().rolling_sum(amihud_window)
    dollar_volume = (close * volume).rolling_sum(amihud_window)
    features = frame.select(
        "ts",
        "ret_1",
        "bvc_buy_frac",
        _ratio((volume * side).rolling_sum(vpin_window), flow_volume)
        .clip(-1.0, 1.0).alias("bvc_imbalance"),
        _ratio((volume * side.abs()).rolling_sum(vpin_window), flow_volume)
        .clip(0.0, 1.0).alias("vpin"),
        _ratio((volume * location).rolling_sum(ofi_window), volume.rolling_sum(ofi_window))
        .clip(-1.0, 1.0).alias("ofi"),
        pl.when(abs_returns > 0).then(_ratio(abs_returns, dollar_volume).log())
        .alias("amihud_log"),
    )
    return finite_only(features.select("ts", *FEATURES))
