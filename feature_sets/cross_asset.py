"""Cross-asset features: how the asset moves with, and against, the rest of its universe.

Source: the asset's bars and ``inputs.panel`` (bars of every universe symbol, this one
included; rows of ``inputs.symbol`` in the panel are ignored, the asset's own bars are used).

Conventions
-----------
- Rows: the asset's bars define the rows. Another asset's close is attached by an exact
  match on ``ts`` (a left join); nothing is carried forward from an earlier bar.
- Returns over matched timestamps: at the asset's bar t (previous bar t'), another asset's
  return is ``log(close_t / close_t')`` only when it has bars at BOTH t and t'; otherwise it is
  null at t. Momentum over N bars uses the same rule with t' the asset's bar N rows back.
- ``ret_1``: the asset's log(close_t / close_{t-1}).
- Market: the equal-weight mean of the other assets' returns available at t (with two assets,
  simply the other one). ``corr_mkt`` and ``beta_mkt`` are the sample correlation and the OLS
  beta (cov / var of the market) of the asset's returns on it over the ``corr_window`` bars
  ending at t, using only bars where both returns exist (pairwise complete).
- ``universe_corr``: the mean of the same rolling correlation over every pair of universe
  assets, this one included (a correlation regime: it rises in sell-offs). With two assets it
  equals ``corr_mkt``. Its cost grows with the square of the universe size.
- ``rel_strength``: the asset's log momentum over ``momentum_window`` bars minus the mean of
  the other assets' momentum over the same timestamps.
- ``rs_rank``: the fraction of the other assets whose momentum the asset's beats (ties count
  one half), in [0, 1]; with two assets it is 0, 0.5 or 1.

A rolling statistic is null until ``corr_window`` bars have passed and whenever fewer than
``max(3, corr_window // 2)`` of its bars hold both returns; a zero variance gives a null
correlation and beta. Non-finite values (NaN, inf) become null.

Point in time: every column at bar t reads bars with ``ts <= t`` only (left join on ``ts``,
backward shifts, trailing windows). Warm-up rows are null, never filled from the future.
"""

from __future__ import annotations

from itertools import combinations

import polars as pl

from feature_sets.indicators import finite_only, log_return
from feature_sets.inputs import FeatureInputs

BOUNDS: dict[str, tuple[float | None, float | None]] = {
    r"^(corr_mkt|universe_corr)$": (-1.0, 1.0),
    r"^rs_rank$": (0.0, 1.0),
}
"""Column regex -> inclusive (low, high) bounds after warm-up."""

FEATURES: tuple[str, ...] = ("ret_1", "corr_mkt", "beta_mkt", "universe_corr", "rel_strength",
                             "rs_rank")


def _rolling_corr_beta(x: pl.Expr, y: pl.Expr, window: int) -> tuple[pl.Expr, pl.Expr]:
    """Pairwise-complete rolling correlation of x and y, and the beta of x on y."""
    both = x.is_not_null() & y.is_not_null()
    xs, ys = (pl.when(both).then(v).otherwise(0.0) for v in (x, y))
    n = both.cast(pl.Float64).rolling_sum(window)
    sx, sy = xs.rolling_sum(window), ys.rolling_sum(window)
    sxy = (xs * ys).rolling_sum(window) - sx * sy / n
    sxx = (xs * xs).rolling_sum(window) - sx * sx / n
    syy = (ys * ys).rolling_sum(window) - sy * sy / n
    enough = n >= max(3, window // 2)
    corr = pl.when(enough & (sxx > 0) & (syy > 0)).then(
        (sxy / (sxx * syy).sqrt()).clip(-1.0, 1.0))
    beta = pl.when(enough & (syy > 0)).then(sxy / syy)
    return corr, beta


def build(
    bars: pl.DataFrame,
    inputs: FeatureInputs,
    corr_window: int = 60,
    momentum_window: int = 20,
) -> pl.DataFrame:
    """Cross-asset features of one asset against its universe.

    Parameters
    ----------
    bars
        One asset's bars (``ts``, OHLCV), sorted by ``ts``.
    inputs
        Its inputs; ``panel`` holds the universe's bars (``symbol``, ``ts``, ``close``, ...).
    corr_window
        Bars in the rolling correlations and beta (at least 3).
    momentum_window
        Bars over which momentum is measured (at least 1).

    Returns
    -------
    pl.DataFrame
        ``ts`` and the Float64 columns ``FEATURES``, one row per bar.

    Raises
    ------
    ValueError
        If the panel is missing, has fewer than two symbols or no symbol but this one, or a
        window is too short.
    """
    if corr_window < 3 or momentum_window < 1:
        raise ValueError(f"cross_asset needs corr_window >= 3 and momentum_window >= 1, got "
                         f"{corr_window} and {momentum_window}")
    panel = inputs.panel
    symbols = [] if panel is None else sorted(panel["symbol"].unique().to_list())
    others = [s for s in symbols if s != inputs.symbol]
    if len(symbols) < 2 or not others:
        raise ValueError(f"cross_asset for {inputs.symbol!r} needs a panel of two or more "
                         f"symbols including another asset; got {symbols}")
    names = [f"other_{i}" for i in range(len(others))]
    wide = (panel.filter(pl.col("symbol").is_in(others))
            .with_columns(pl.col("ts").cast(bars.schema["ts"]), pl.col("close").cast(pl.Float64))
            .pivot(on="symbol", index="ts", values="close")
            .rename(dict(zip(others, names, strict=True))))
    closes = (bars.select("ts", pl.col("close").cast(pl.Float64).alias("self"))
              .join(wide, on="ts", how="left").sort("ts"))

    # Returns and momenta become columns first: polars would recompute an expression inside
    # every rolling sum that reads it.
    series = ["self", *names]
    closes = closes.with_columns(
        *(log_return(pl.col(n)).alias(f"r_{n}") for n in series),
        *(log_return(pl.col(n), momentum_window).alias(f"m_{n}") for n in series),
    ).with_columns(pl.mean_horizontal(*(pl.col(f"r_{n}") for n in names)).alias("r_market"))
    returns = {n: pl.col(f"r_{n}") for n in series}
    corr_mkt, beta_mkt = _rolling_corr_beta(returns["self"], pl.col("r_market"), corr_window)
    pair_corrs = ([corr_mkt] if len(names) == 1 else  # two assets: the one pair is the market
                  [_rolling_corr_beta(returns[a], returns[b], corr_window)[0]
                   for a, b in combinations(returns, 2)])
    momentum = pl.col("m_self")
    others_momentum = [pl.col(f"m_{n}") for n in names]
    beaten = pl.sum_horizontal(
        *(pl.when(momentum > m).then(1.0).when(momentum == m).then(0.5).when(m.is_not_null())
          .then(0.0) for m in others_momentum))
    compared = pl.sum_horizontal(*(m.is_not_null().cast(pl.Float64) for m in others_momentum))
    features = closes.select(
        "ts",
        returns["self"].alias("ret_1"),
        corr_mkt.alias("corr_mkt"),
        beta_mkt.alias("beta_mkt"),
        pl.mean_horizontal(*pair_corrs).alias("universe_corr"),
        (momentum - pl.mean_horizontal(*others_momentum)).alias("rel_strength"),
        pl.when(momentum.is_not_null() & (compared > 0)).then(beaten / compared)
        .alias("rs_rank"),
    )
    return finite_only(features.select("ts", *FEATURES))
