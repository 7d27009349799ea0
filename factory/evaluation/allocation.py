"""How the Production models share capital: risk-adjusted, recent-tilted, capped weights."""

from __future__ import annotations

import numpy as np
import polars as pl

from factory.config import AllocationConfig


def allocate(production: pl.DataFrame, policy: AllocationConfig) -> dict[str, float]:
    """Weights of the Production models, summing to 1, none above ``policy.max_weight``.

    A model's raw weight is ``(1 - recent_weight) * sharpe + recent_weight *
    rolling_sharpe_30d`` floored at 0 (missing figures count as 0): the whole out-of-sample
    record tempered by the last 30 days, so a configuration on the rise gains and a falling
    one loses. Raw weights are normalised; when none is positive every model gets the same
    weight. The cap is applied by water-filling: weights above it are set to it and the
    excess goes to the others in proportion to their raw weights (equally among models with
    a raw weight of 0), repeated until none exceeds it. A cap that ``n`` models cannot fill
    (``n * max_weight < 1``) gives equal weights.

    Parameters
    ----------
    production : polars.DataFrame
        ``model_name``, ``sharpe``, ``rolling_sharpe_30d``, one row per Production model.
    policy : AllocationConfig
        ``recent_weight`` and ``max_weight``.

    Returns
    -------
    dict of str to float
        ``model_name`` to weight; empty for an empty table.
    """
    n = production.height
    if n == 0:
        return {}
    names = production["model_name"].to_list()
    if n * policy.max_weight <= 1.0:
        return dict.fromkeys(names, 1.0 / n)
    sharpe = _finite(production["sharpe"])
    recent = _finite(production["rolling_sharpe_30d"])
    raw = np.maximum((1 - policy.recent_weight) * sharpe + policy.recent_weight * recent, 0.0)
    raw = raw if raw.sum() > 0 else np.ones(n)
    weights = raw / raw.sum()
    capped = np.zeros(n, dtype=bool)
    while (weights > policy.max_weight + 1e-12).any():
        capped |= weights > policy.max_weight
        free = ~capped
        base = raw[free] if raw[free].sum() > 0 else np.ones(int(free.sum()))
        weights[capped] = policy.max_weight
        weights[free] = (1.0 - policy.max_weight * capped.sum()) * base / base.sum()
    return {name: float(w) for name, w in zip(names, weights, strict=True)}


def _finite(column: pl.Series) -> np.ndarray:
    """Float values with nulls and NaN as 0."""
    return np.nan_to_num(column.cast(pl.Float64).fill_null(0.0).to_numpy(), nan=0.0)
