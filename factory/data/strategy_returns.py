"""The lake's strategy_returns table: every trained run's OOS portfolio return series, tagged
with its run id, spec id, registered model and lake version (written once, read by selection).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from factory.data.lake import Lake

TABLE = "strategy_returns"


def append_strategy_returns(lake: Lake, portfolio: pl.DataFrame, *, run_id: str, spec_id: str,
                            model_name: str, lake_version: int) -> int:
    """Append one run's ``ts``/``ret`` series with its identifiers; returns the table version."""
    return lake.append_table(TABLE, portfolio.with_columns(
        pl.lit(run_id).alias("run_id"), pl.lit(spec_id).alias("spec_id"),
        pl.lit(model_name).alias("model_name"), pl.lit(lake_version).alias("lake_version"),
    ))


def candidate_returns(lake: Lake, candidates: pl.DataFrame) -> dict[str, np.ndarray]:
    """OOS return series of each candidate's run, aligned on the union of timestamps."""
    table = lake.read_table(TABLE).filter(pl.col("run_id").is_in(candidates["run_id"].to_list()))
    wide = table.pivot(on="model_name", index="ts", values="ret").sort("ts")
    return {name: wide[name].to_numpy() if name in wide.columns
            else np.full(wide.height, np.nan) for name in candidates["model_name"]}
