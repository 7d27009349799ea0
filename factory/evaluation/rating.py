"""Composite score: one number per model from many metrics.

Metrics live on incomparable scales (a Sharpe of 1.5, a drawdown of 0.3, a fit time of 40 s,
a profit factor capped at 1e6), and a few extreme values would dominate any weighted sum of raw
or z-scored numbers. Each metric is therefore replaced by its cross-sectional rank, scaled to
[0, 1] with 1 the best model, before weighting: the score depends only on the order of the
models on each metric, so it is robust to scale, units and outliers.
"""

import json
from collections.abc import Collection, Mapping

import polars as pl

DEFAULT_LOWER_IS_BETTER = frozenset(
    {"max_drawdown", "recovery_bars", "recovery_days", "fit_seconds", "predict_ms_per_1k",
     "corr_active_max", "corr_active_mean", "turnover", "live_max_drawdown"}
)


def composite_score(
    metrics: pl.DataFrame,
    weights: Mapping[str, float],
    lower_is_better: Collection[str] = DEFAULT_LOWER_IS_BETTER,
) -> pl.Series:
    """Weighted average of per-metric cross-sectional ranks.

    For each weighted column, the models are ranked (ties share their average rank) and the
    rank is scaled to [0, 1]: ``(rank - 1) / (n - 1)``, 1 for the best. Columns named in
    ``lower_is_better`` are ranked in reverse. A missing value (null or NaN) gets rank 0, the
    worst, so a model cannot gain from a metric it failed to produce; finite values still rank
    above the missing ones. A single row scores 1 on every metric it has. The weights are
    normalised to sum 1, so the score is in [0, 1] as well.

    Parameters
    ----------
    metrics : polars.DataFrame
        One row per model, numeric metric columns.
    weights : Mapping of str to float
        Column name to non-negative weight; zero weights are allowed, not all of them.
    lower_is_better : Collection of str
        Columns where a smaller value is better.

    Returns
    -------
    polars.Series
        Float series named ``score``, aligned with the rows of ``metrics``.

    Raises
    ------
    ValueError
        If a weighted column is missing, a weight is negative or not finite, or all weights
        are zero.
    """
    missing = sorted(set(weights) - set(metrics.columns))
    if missing:
        raise ValueError(f"weighted metric columns missing from the table: {missing}")
    bad = {name: w for name, w in weights.items() if not 0 <= w < float("inf")}
    if bad:
        raise ValueError(f"weights must be finite and >= 0, got {bad}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"weights must not all be zero, got {dict(weights)}")
    score = pl.zeros(metrics.height, dtype=pl.Float64, eager=True)
    for name, weight in sorted(weights.items()):
        if weight:
            score = score + weight / total * _scaled_rank(metrics[name], name in lower_is_better)
    return score.alias("score")


def metric_ranks_json(
    metrics: pl.DataFrame,
    weights: Mapping[str, float],
    lower_is_better: Collection[str] = DEFAULT_LOWER_IS_BETTER,
) -> pl.Series:
    """Each model's scaled rank (1 best) on every weighted metric, as a JSON object per row.

    The ranks `composite_score` averages, kept with each candidate so that a leaderboard can
    say where a score came from (``{"max_drawdown": 0.25, "sharpe": 1.0}``).
    """
    ranks = pl.DataFrame({name: _scaled_rank(metrics[name], name in lower_is_better)
                          for name in sorted(weights)})
    return pl.Series("metric_ranks", [json.dumps({k: round(v, 4) for k, v in row.items()})
                                      for row in ranks.iter_rows(named=True)], dtype=pl.String)


def _scaled_rank(values: pl.Series, lower_is_better: bool) -> pl.Series:
    """Rank in [0, 1], 1 best, missing values 0; ranks sit above all missing values."""
    column = values.cast(pl.Float64).fill_nan(None)
    if lower_is_better:
        column = -column
    if column.len() == 1:
        return column.is_not_null().cast(pl.Float64)
    ranks = column.rank(method="average")
    return ((ranks - 1 + column.null_count()) / (column.len() - 1)).fill_null(0.0)
