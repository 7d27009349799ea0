"""The lake's return tables: every trained run's walk-forward OOS series (strategy_returns)
and every version's live (paper) series from the snapshots (live_returns), each row tagged
with the run, the registered model and the lake version, so any figure can be reproduced.
"""

from __future__ import annotations

import polars as pl

from factory.data.lake import Lake

TABLE = "strategy_returns"
LIVE_TABLE = "live_returns"


def append_strategy_returns(lake: Lake, portfolio: pl.DataFrame, *, run_id: str, spec_id: str,
                            model_name: str, lake_version: int) -> int:
    """Append one run's ``ts``/``ret`` series with its identifiers; returns the table version."""
    return lake.append_table(TABLE, portfolio.with_columns(
        pl.lit(run_id).alias("run_id"), pl.lit(spec_id).alias("spec_id"),
        pl.lit(model_name).alias("model_name"), pl.lit(lake_version).alias("lake_version"),
    ))


def append_live_returns(lake: Lake, rows: pl.DataFrame) -> int:
    """Append live rows (``model_name, version, run_id, ts, ret, n_assets, lake_version,
    snapshot_at``) in one commit; returns the table version."""
    return lake.append_table(LIVE_TABLE, rows)


def live_returns(lake: Lake) -> pl.DataFrame:
    """Every live row so far (empty, with the columns, before the first snapshot)."""
    if lake.version(LIVE_TABLE) is None:
        return pl.DataFrame(schema={"model_name": pl.String, "version": pl.String,
                                    "ts": pl.Datetime("us"), "ret": pl.Float64})
    return lake.read_table(LIVE_TABLE)


def candidate_records(lake: Lake, versions: pl.DataFrame) -> pl.DataFrame:
    """Each version's out-of-sample record: walk-forward rows, then its live rows.

    Parameters
    ----------
    lake : Lake
        The lake holding both tables.
    versions : polars.DataFrame
        ``model_name``, ``version`` and ``run_id`` of each candidate.

    Returns
    -------
    polars.DataFrame
        ``model_name, ts, ret, live`` sorted by model and time; a bar both records hold
        (never expected: live bars follow the refit's last bar) is kept once, walk-forward.
    """
    walk_forward = (lake.read_table(TABLE)
                    .filter(pl.col("run_id").is_in(versions["run_id"].to_list()))
                    .select("model_name", pl.col("ts").cast(pl.Datetime("us")), "ret",
                            pl.lit(False).alias("live")))
    live = (live_returns(lake)
            .join(versions.select("model_name", "version"), on=["model_name", "version"])
            .select("model_name", pl.col("ts").cast(pl.Datetime("us")), "ret",
                    pl.lit(True).alias("live")))
    return (pl.concat([walk_forward, live])
            .unique(["model_name", "ts"], keep="first", maintain_order=True)
            .sort("model_name", "ts"))
