"""Sentiment: aggregates of the asset's sentiment table, and a VIX fear/greed proxy.

Sources: ``inputs.sentiment`` (``ts`` when a row became known, Float64 ``score`` in [-1, 1],
optional ``count``: the number of items a row summarises; other columns are ignored) and the
daily VIX closes packaged with ``arch`` (``arch.data.vix``: 2014-01-03 .. 2019-01-03 only).

Conventions: the table
----------------------
- Each row is attached to the FIRST bar at or after its ``ts``: bar t sees exactly the rows
  with ``ts <= t`` (the backward as-of rule), and rows that arrive between two bars are all
  counted, not only the last. Rows with a null score, or a ``count`` that is null or not
  positive, are skipped. A row's weight is its ``count``, or 1 without a ``count`` column.
- ``sent_score``: weighted mean score of the rows the latest bar with rows received (carried
  forward to later bars), in [-1, 1]; null before the first row.
- ``sent_mean_short`` / ``sent_mean_long``: mean of ``sent_score`` over the ``short_window`` /
  ``long_window`` bars ending at t (time-weighted: a score counts for every bar it stood).
- ``sent_change``: ``sent_score`` minus its value ``short_window`` bars earlier, in [-2, 2].
- ``sent_surprise``: (``sent_score`` - ``sent_mean_long``) / the standard deviation of
  ``sent_score`` over the same bars; 0 when that deviation is 0 (nothing to be surprised by).
- ``sent_weighted``: weighted mean score of all rows received over the ``long_window`` bars
  ending at t (the count-weighted average where ``count`` exists); a window without rows
  carries the last value.
- ``sent_items``: log(1 + total weight received over the ``short_window`` bars ending at t):
  news intensity (items where ``count`` exists, else rows).
- ``sent_staleness``: bars since the last bar that received a row (0 at that bar).
- Without a table (``inputs.sentiment is None``, allowed for ``calendar == "equity"`` only:
  VIX-only mode) every ``sent_*`` column is null.

Conventions: VIX
----------------
- The VIX close of date D is final at 16:15 New York time (the SPX options close), which is
  21:15 UTC in winter, so it is stamped D 22:00 UTC and joined backwards onto bar ``ts``:
  a daily bar stamped 00:00 of D+1 sees VIX(D), and a daily bar stamped 00:00 of D (whose
  session closes at 16:00 that day) sees VIX(D-1): a conservative one-bar lag.
- Computed on the VIX's own trading days, then joined: ``vix_log`` = log VIX;
  ``vix_z`` = (VIX - mean) / std over the ``vix_window`` days ending at D;
  ``vix_rel_year`` = log(VIX / its mean over the last 252 days); ``vix_change`` = log(VIX_D /
  VIX ``vix_change_days`` days earlier). The packaged series has no VIX futures or VIX3M, so
  there is no term-structure slope; ``vix_change`` is the change over a term.
- VIX describes US equities: when ``inputs.calendar != "equity"``, or when a bar's latest VIX
  close is missing or older than 7 days (outside the packaged 2014-2018 range), the ``vix_*``
  columns are null.

Point in time: every column at bar t uses table rows and VIX closes known at or before t,
and trailing windows of bars; warm-up rows are null, never filled from the future.
Non-finite values (NaN, inf) become null.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

import polars as pl

from feature_sets.indicators import finite_only, log_return
from feature_sets.inputs import FeatureInputs

BOUNDS: dict[str, tuple[float | None, float | None]] = {
    r"^sent_(score|mean_short|mean_long|weighted)$": (-1.0, 1.0),
    r"^sent_change$": (-2.0, 2.0),
    r"^sent_(items|staleness)$": (0.0, None),
}
"""Column regex -> inclusive (low, high) bounds after warm-up."""

SCORE_FEATURES: tuple[str, ...] = ("sent_score", "sent_mean_short", "sent_mean_long",
                                   "sent_change", "sent_surprise", "sent_weighted",
                                   "sent_items", "sent_staleness")
VIX_FEATURES: tuple[str, ...] = ("vix_log", "vix_z", "vix_rel_year", "vix_change")
FEATURES: tuple[str, ...] = ("ret_1", *SCORE_FEATURES, *VIX_FEATURES)
VIX_KNOWN_AFTER_MIDNIGHT = timedelta(hours=22)
"""When date D's VIX close is stamped: D 22:00 UTC (it is final at 16:15 New York time)."""
VIX_MAX_AGE = "7d"
"""A bar whose latest VIX close is older than this gets null VIX columns (the longest US
market closure since 1999, after 11 September 2001, put 6 days 2 hours between the VIX
close of 10 September and the next daily bar)."""
YEAR_DAYS = 252
"""VIX trading days in the year that ``vix_rel_year`` compares against."""


def _nulls(times: pl.DataFrame, names: tuple[str, ...]) -> pl.DataFrame:
    """Null Float64 columns ``names``, one row per row of ``times``."""
    return times.with_columns(pl.lit(None, pl.Float64).alias(c) for c in names).drop("ts")


@cache
def _vix_closes() -> pl.DataFrame:
    """The packaged daily VIX closes, once per process: ``ts`` (when known) and ``vix``."""
    from arch.data import vix

    raw = vix.load()["vix"]
    return (pl.DataFrame({"ts": raw.index.to_numpy(), "vix": raw.to_numpy()})
            .filter(pl.col("vix").is_finite() & (pl.col("vix") > 0))
            .with_columns(pl.col("ts").dt.truncate("1d") + VIX_KNOWN_AFTER_MIDNIGHT)
            .sort("ts"))


def vix_span() -> tuple[datetime, datetime]:
    """When the packaged VIX series starts and ends (as stamped here, naive UTC)."""
    closes = _vix_closes()["ts"]
    return closes.min(), closes.max()


def _vix_features(times: pl.DataFrame, window: int, change_days: int) -> pl.DataFrame:
    """``VIX_FEATURES`` on the VIX's trading days, joined backwards onto ``times.ts``."""
    level = pl.col("vix")
    daily = _vix_closes().select(
        pl.col("ts").cast(times.schema["ts"]),
        level.log().alias("vix_log"),
        ((level - level.rolling_mean(window)) / level.rolling_std(window)).alias("vix_z"),
        (level / level.rolling_mean(YEAR_DAYS)).log().alias("vix_rel_year"),
        (level / level.shift(change_days)).log().alias("vix_change"),
    )
    return times.join_asof(daily, on="ts", strategy="backward",
                           tolerance=VIX_MAX_AGE).select(VIX_FEATURES)


def _score_features(times: pl.DataFrame, table: pl.DataFrame, symbol: str, short_window: int,
                    long_window: int) -> pl.DataFrame:
    """``SCORE_FEATURES`` from the sentiment rows, one row per bar of ``times``."""
    if "score" not in table.columns:
        raise ValueError(f"the sentiment table of {symbol!r} has no 'score' column "
                         f"(columns: {table.columns})")
    weight = pl.col("count").cast(pl.Float64) if "count" in table.columns else pl.lit(1.0)
    received = (
        table.select(pl.col("ts").cast(times.schema["ts"]), pl.col("score").cast(pl.Float64),
                     weight.alias("weight"))
        .filter(pl.col("score").is_finite() & pl.col("weight").is_finite()
                & (pl.col("weight") > 0))
        .sort("ts")
        .join_asof(times.with_columns(bar_ts=pl.col("ts")), on="ts", strategy="forward")
        .group_by("bar_ts")
        .agg(weighted_sum=(pl.col("score") * pl.col("weight")).sum(), weight=pl.col("weight").sum())
    )
    per_bar = times.join(received, left_on="ts", right_on="bar_ts", how="left",
                         maintain_order="left")
    score = pl.col("score")
    weighted_sum, weight = pl.col("weighted_sum").fill_null(0.0), pl.col("weight").fill_null(0.0)
    received_weight = weight.rolling_sum(long_window)
    spread = score.rolling_std(long_window)
    row = pl.int_range(pl.len())
    return per_bar.with_columns(
        score=(pl.col("weighted_sum") / pl.col("weight")).forward_fill(),
    ).select(
        score.alias("sent_score"),
        score.rolling_mean(short_window).alias("sent_mean_short"),
        score.rolling_mean(long_window).alias("sent_mean_long"),
        (score - score.shift(short_window)).alias("sent_change"),
        pl.when(spread > 0).then((score - score.rolling_mean(long_window)) / spread)
        .when(spread == 0).then(0.0).alias("sent_surprise"),
        pl.when(received_weight > 0).then(weighted_sum.rolling_sum(long_window) / received_weight)
        .forward_fill().alias("sent_weighted"),
        weight.rolling_sum(short_window).log1p().alias("sent_items"),
        (row - pl.when(pl.col("weight").is_not_null()).then(row).forward_fill())
        .alias("sent_staleness"),
    )


def build(
    bars: pl.DataFrame,
    inputs: FeatureInputs,
    short_window: int = 5,
    long_window: int = 20,
    vix_window: int = 60,
    vix_change_days: int = 5,
) -> pl.DataFrame:
    """Sentiment-table aggregates and VIX features of one asset's bars.

    Parameters
    ----------
    bars
        One asset's bars (``ts``, OHLCV), sorted by ``ts``.
    inputs
        Its inputs: ``sentiment`` (the table, or None in VIX-only mode) and ``calendar``.
    short_window, long_window
        Bars in the short and long windows over the table's aggregates.
    vix_window
        VIX trading days in the rolling z-score (at least 2).
    vix_change_days
        VIX trading days over which ``vix_change`` is measured.

    Returns
    -------
    pl.DataFrame
        ``ts`` and the Float64 columns ``FEATURES``, one row per bar.

    Raises
    ------
    ValueError
        If a window is too short, the table has no ``score`` column, or there is no table
        for an asset whose calendar is not ``"equity"``.
    """
    if min(short_window, vix_change_days) < 1 or min(long_window, vix_window) < 2:
        raise ValueError("sentiment needs short_window, vix_change_days >= 1 and long_window, "
                         f"vix_window >= 2; got {short_window}, {vix_change_days}, "
                         f"{long_window}, {vix_window}")
    if inputs.sentiment is None and inputs.calendar != "equity":
        raise ValueError(f"sentiment for {inputs.symbol!r} ({inputs.calendar}) needs a "
                         "sentiment table: the VIX-only mode is for US equities")
    times = bars.select("ts")
    scores = (_nulls(times, SCORE_FEATURES) if inputs.sentiment is None else
              _score_features(times, inputs.sentiment, inputs.symbol, short_window,
                              long_window))
    vix = (_vix_features(times, vix_window, vix_change_days) if inputs.calendar == "equity"
           else _nulls(times, VIX_FEATURES))
    close = pl.col("close")
    features = pl.concat([bars.select("ts", log_return(close).alias("ret_1")),
                          scores, vix], how="horizontal")
    return finite_only(features.select("ts", *FEATURES))
