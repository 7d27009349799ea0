"""Rank the registry's latest versions with the selection policy, and render the leaderboard.

Every figure shown is out-of-sample and after costs, with its config id and lake version.
Each row names its model as the registry does: ``models:/<model>@production`` loads it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from factory.config import SelectionConfig
from factory.selection import SelectionResult, select

COLUMNS = ("rank", "model_name", "config", "spec_id", "sharpe", "buy_and_hold_sharpe",
           "max_drawdown", "win_rate", "stage", "lake_version", "reason")
HEADERS = {"model_name": "model"}
"""Display names of columns; ``model`` is the registered model name."""


def rank_candidates(policy: SelectionConfig, candidates: pl.DataFrame,
                    returns: dict[str, np.ndarray]) -> SelectionResult:
    """Apply the selection policy of conf/selection.yaml to the candidates."""
    return select(candidates, returns, weights=policy.weights, top_k=policy.top_k,
                  min_k=policy.min_k, max_correlation=policy.max_correlation,
                  min_sharpe=policy.min_sharpe, min_obs=policy.min_obs)


def leaderboard_table(candidates: pl.DataFrame, result: SelectionResult) -> pl.DataFrame:
    """Join the selection's ranks and reasons onto the candidates' metrics and stages."""
    joined = candidates.join(result.table, on="model_name", how="left")
    return joined.sort("rank", nulls_last=True).select(
        [c for c in COLUMNS if c in joined.columns])


def leaderboard_markdown(table: pl.DataFrame) -> str:
    """The leaderboard as a markdown table (Prefect artifact and README-friendly)."""
    header = "| " + " | ".join(HEADERS.get(c, c) for c in table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.iter_rows()]
    return "\n".join([header, rule, *rows])


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)
