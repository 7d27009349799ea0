"""What each feature set reads besides an asset's bars, and which inputs a universe lacks.

The factory gives a feature set the `FeatureInputs` it declared it needs, cut from one
dataset reference: the universe's bars as the ``panel``, and the asset's rows of the lake's
``sentiment`` and ``onchain`` tables at the versions the reference pinned. The grid asks
`missing_inputs` first and drops, with the reason, every cell whose feature set needs an input
the universe lacks (rule 2: impossible cells never run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from feature_sets import FeatureInputs, feature_set

SIDE_TABLES = ("sentiment", "onchain")
"""Lake tables a feature set can read beside the bars."""
MIN_VIX_OVERLAP = 250
"""Bars each asset needs inside the packaged VIX series for the VIX-only sentiment proxy."""


def inputs_for(symbol: str, name: str, calendar: str, bars: pl.DataFrame,
               side: Mapping[str, pl.DataFrame]) -> FeatureInputs:
    """The inputs feature set ``name`` reads for ``symbol``.

    Parameters
    ----------
    symbol
        The asset.
    name
        The feature set: only what it needs is handed over.
    calendar
        The universe's calendar.
    bars
        Every bar of the universe (the panel).
    side
        Side table name -> its rows (``symbol``, ``ts``, metric columns) at the pinned version.
    """
    needs = feature_set(name).needs
    own = {kind: _rows_of(side.get(kind), symbol) for kind in SIDE_TABLES if kind in needs}
    panel = bars if "panel" in needs and bars["symbol"].n_unique() > 1 else None
    return FeatureInputs(symbol=symbol, calendar=calendar, panel=panel, **own)


def _rows_of(table: pl.DataFrame | None, symbol: str) -> pl.DataFrame | None:
    """One symbol's side-table rows (``ts`` and metrics), or ``None`` when it has none.

    A metric the symbol's rows never give (an optional column left out of its file) is
    dropped, so the feature set treats it as absent rather than as a column of nulls.
    """
    if table is None:
        return None
    rows = table.filter(pl.col("symbol") == symbol).drop("symbol").sort("ts")
    given = [c for c in rows.columns if c == "ts" or rows[c].null_count() < rows.height]
    return rows.select(given) if rows.height else None


def missing_panel(symbols: Sequence[str]) -> dict[str, str]:
    """``{"panel": why}`` for a one-symbol universe, else ``{}`` (also for an unknown one)."""
    if len(symbols) == 1:
        return {"panel": f"the universe has one symbol ({symbols[0]})"}
    return {}


def missing_inputs(symbols: Sequence[str], calendar: str, bars: pl.DataFrame | None,
                   side: Mapping[str, pl.DataFrame]) -> dict[str, str]:
    """Input kind -> why the universe lacks it, for every kind some symbol lacks.

    Parameters
    ----------
    symbols
        The universe (empty: unknown, nothing is reported missing).
    calendar
        Its calendar.
    bars
        Its bars (``None``: not read; the VIX overlap is then not checked).
    side
        Side table name -> its rows, for the tables the lake holds.
    """
    missing = missing_panel(symbols)
    for kind in SIDE_TABLES:
        table = side.get(kind)
        held = set() if table is None else set(table["symbol"].unique().to_list())
        lacking = [s for s in symbols if s not in held]
        if kind == "sentiment" and calendar == "equity":
            lacking = [s for s in lacking if not _vix_covers(bars, s)]
        if lacking:
            missing[kind] = _lacking_reason(kind, lacking, calendar)
    return missing


def _lacking_reason(kind: str, lacking: list[str], calendar: str) -> str:
    shown = ", ".join(lacking[:5]) + (" ..." if len(lacking) > 5 else "")
    if kind == "sentiment" and calendar == "equity":
        return (f"no sentiment rows for {shown}, and fewer than {MIN_VIX_OVERLAP} of their "
                "bars fall inside the packaged VIX series; ingest one with "
                "`factory ingest --kind sentiment`")
    return f"no {kind} rows for {shown}; ingest them with `factory ingest --kind {kind}`"


def _vix_covers(bars: pl.DataFrame | None, symbol: str) -> bool:
    """Whether enough of ``symbol``'s bars fall inside the packaged VIX series."""
    if bars is None:
        return True
    from feature_sets.sentiment import vix_span

    first, last = vix_span()
    inside = bars.filter(pl.col("symbol") == symbol, pl.col("ts").is_between(first, last))
    return inside.height >= MIN_VIX_OVERLAP
