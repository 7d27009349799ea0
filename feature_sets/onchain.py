"""On-chain activity: growth and surprise in network use, exchange flows, and a ratio of
exchange trading to on-chain use.

Source: ``inputs.onchain``, the asset's rows of the on-chain table: ``ts`` (when the row's
values became known, e.g. the end of the day they count) and Float64 metrics. Required:
``active_addresses``, ``transaction_count``; optional: ``exchange_inflow``,
``exchange_outflow`` (coins sent to / withdrawn from exchanges). Other columns are ignored.

Conventions
-----------
- Metrics are periodic measurements (a day's active addresses), not events, so growth and
  z-scores are computed on the table's own rows (windows count ROWS of the table, e.g. days)
  and then joined backwards onto bar ``ts``: bar t carries the latest row with ``ts <= t``.
- ``addr_growth_short`` / ``addr_growth_long``: log(active_addresses / its value
  ``short_window`` / ``long_window`` rows earlier); ``tx_growth_short`` / ``tx_growth_long``:
  the same for ``transaction_count``.
- ``addr_z`` / ``tx_z``: z-score of the metric's log against the ``z_window`` rows ending at
  the row (mean and sample standard deviation); null when that deviation is 0.
- ``netflow_ratio``: (sum outflow - sum inflow) / (sum outflow + sum inflow) over the
  ``flow_window`` rows ending at the row, in [-1, 1]: positive when coins leave exchanges
  (accumulation), negative when they arrive (supply for sale); null when the flows sum to 0.
- ``nvt_log``: log(mean close * volume over the ``nvt_window`` bars ending at t / the latest
  ``transaction_count``): exchange dollar turnover per on-chain transaction, an NVT-like
  ratio built from what the bars know (no supply, so no network value; no on-chain dollar
  volume). High values: trading outruns use. Its scale depends on the bar frequency.
- ``onchain_staleness``: bars since the bar that first saw the latest row (0 at that bar).
- Missing data: an absent optional column gives null ``netflow_ratio`` (not an error); a
  non-positive metric gives a null log (and null growth and z-score around it); the required
  columns must exist.

Point in time: a row is used only by bars at or after its ``ts``; every window ends at the
latest row (or bar) known at t. Warm-up rows are null, never filled from the future.
Non-finite values (NaN, inf) become null.
"""

from __future__ import annotations

import polars as pl

from feature_sets.indicators import finite_only, log_return
from feature_sets.inputs import FeatureInputs

BOUNDS: dict[str, tuple[float | None, float | None]] = {
    r"^netflow_ratio$": (-1.0, 1.0),
    r"^onchain_staleness$": (0.0, None),
}
"""Column regex -> inclusive (low, high) bounds after warm-up."""

REQUIRED: tuple[str, ...] = ("active_addresses", "transaction_count")
FLOWS: tuple[str, ...] = ("exchange_inflow", "exchange_outflow")
TABLE_FEATURES: tuple[str, ...] = ("addr_growth_short", "addr_growth_long", "tx_growth_short",
                                   "tx_growth_long", "addr_z", "tx_z", "netflow_ratio")
FEATURES: tuple[str, ...] = ("ret_1", *TABLE_FEATURES, "nvt_log", "onchain_staleness")


def _log_positive(name: str) -> pl.Expr:
    """log of column ``name`` where positive, else null."""
    return pl.when(pl.col(name) > 0).then(pl.col(name).log())


def _z_score(level: pl.Expr, window: int) -> pl.Expr:
    """z-score of ``level`` against its trailing ``window`` rows; null for a zero deviation."""
    spread = level.rolling_std(window)
    return pl.when(spread > 0).then((level - level.rolling_mean(window)) / spread)


def _table_features(table: pl.DataFrame, short_window: int, long_window: int, z_window: int,
                    flow_window: int) -> pl.DataFrame:
    """``ts``, ``transaction_count`` and ``TABLE_FEATURES`` on the table's own rows."""
    addresses, transactions = _log_positive("active_addresses"), _log_positive("transaction_count")
    if set(FLOWS) <= set(table.columns):
        inflow, outflow = (pl.col(c).cast(pl.Float64).rolling_sum(flow_window) for c in FLOWS)
        total = inflow + outflow
        netflow = pl.when(total > 0).then(((outflow - inflow) / total).clip(-1.0, 1.0))
    else:
        netflow = pl.lit(None, pl.Float64)
    return table.sort("ts").with_columns(pl.col(REQUIRED).cast(pl.Float64)).select(
        "ts",
        "transaction_count",
        (addresses - addresses.shift(short_window)).alias("addr_growth_short"),
        (addresses - addresses.shift(long_window)).alias("addr_growth_long"),
        (transactions - transactions.shift(short_window)).alias("tx_growth_short"),
        (transactions - transactions.shift(long_window)).alias("tx_growth_long"),
        _z_score(addresses, z_window).alias("addr_z"),
        _z_score(transactions, z_window).alias("tx_z"),
        netflow.alias("netflow_ratio"),
    )


def build(
    bars: pl.DataFrame,
    inputs: FeatureInputs,
    short_window: int = 7,
    long_window: int = 30,
    z_window: int = 90,
    flow_window: int = 7,
    nvt_window: int = 7,
) -> pl.DataFrame:
    """On-chain features of one asset's bars.

    Parameters
    ----------
    bars
        One asset's bars (``ts``, OHLCV), sorted by ``ts``.
    inputs
        Its inputs; ``onchain`` holds the on-chain table.
    short_window, long_window
        Table rows over which growth is measured.
    z_window
        Table rows in the rolling z-scores (at least 2).
    flow_window
        Table rows summed by ``netflow_ratio``.
    nvt_window
        Bars of dollar volume averaged by ``nvt_log``.

    Returns
    -------
    pl.DataFrame
        ``ts`` and the Float64 columns ``FEATURES``, one row per bar.

    Raises
    ------
    ValueError
        If the table is missing or lacks a required column, or a window is too short.
    """
    if z_window < 2 or min(short_window, long_window, flow_window, nvt_window) < 1:
        raise ValueError("onchain needs z_window >= 2 and the other windows >= 1; got "
                         f"{short_window}, {long_window}, {z_window}, {flow_window}, "
                         f"{nvt_window}")
    table = inputs.onchain
    missing = [c for c in REQUIRED if table is None or c not in table.columns]
    if missing:
        raise ValueError(f"the on-chain table of {inputs.symbol!r} lacks the column(s) "
                         f"{missing}; required: {list(REQUIRED)}")
    per_row = _table_features(table, short_window, long_window, z_window, flow_window)
    known = per_row.with_columns(pl.col("ts").cast(bars.schema["ts"]), row_ts=pl.col("ts"))
    close, row_ts = pl.col("close"), pl.col("row_ts")
    bar = pl.int_range(pl.len())
    first_seen = row_ts.is_not_null() & row_ts.ne_missing(row_ts.shift(1))
    dollar_volume = (close * pl.col("volume").cast(pl.Float64)).rolling_mean(nvt_window)
    features = bars.join_asof(known, on="ts", strategy="backward").select(
        "ts",
        log_return(close).alias("ret_1"),
        *TABLE_FEATURES,
        pl.when((dollar_volume > 0) & (pl.col("transaction_count") > 0))
        .then((dollar_volume / pl.col("transaction_count")).log()).alias("nvt_log"),
        (bar - pl.when(first_seen).then(bar).forward_fill()).alias("onchain_staleness"),
    )
    return finite_only(features.select("ts", *FEATURES))
