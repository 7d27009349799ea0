"""Raw OHLCV, made comparable across time and assets.

Prices become log ratios to the previous close (so a model sees moves, not price levels);
volume becomes its log ratio to the trailing mean volume of ``volume_window`` bars
(volume normalisation: index volume grew tenfold over 1999-2018, its ratio did not).
"""

from __future__ import annotations

import polars as pl


def build(bars: pl.DataFrame, volume_window: int = 20) -> pl.DataFrame:
    """Return ``ts``, ``ret_1``, ``open_gap``, ``high_range``, ``low_range``, ``volume_ratio``."""
    prev_close = pl.col("close").shift(1)
    trailing_volume = pl.col("volume").rolling_mean(volume_window)
    return bars.select(
        "ts",
        (pl.col("close") / prev_close).log().alias("ret_1"),
        (pl.col("open") / prev_close).log().alias("open_gap"),
        (pl.col("high") / pl.col("close")).log().alias("high_range"),
        (pl.col("low") / pl.col("close")).log().alias("low_range"),
        ((pl.col("volume") + 1.0) / (trailing_volume + 1.0)).log().alias("volume_ratio"),
    ).with_columns(pl.exclude("ts").cast(pl.Float64).fill_nan(None))
