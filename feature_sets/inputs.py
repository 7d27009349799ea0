"""What a feature set may read besides the asset's own bars, already cut point-in-time.

The factory assembles a `FeatureInputs` per asset from one lake version: the universe's bars
(``panel``), and the asset's rows of the ``sentiment`` and ``onchain`` tables as known when
that version was written (latest knowledge per ``(symbol, ts)``). A side-table row's ``ts`` is
when its value became known (a score published at 15:00 is stamped 15:00, not at the start
of the day it summarises); a feature set joins it backwards, so bar t sees only rows with
``ts <= t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

INPUT_KINDS: dict[str, str] = {
    "bars": "the asset's OHLCV bars",
    "panel": "the bars of two or more assets of one universe",
    "sentiment": "a sentiment table (`factory ingest --kind sentiment`) or, for US equities, "
                 "the packaged VIX series",
    "onchain": "an on-chain metrics table (`factory ingest --kind onchain`) for a crypto asset",
}
"""Every input a feature set can need, and what provides it."""


@dataclass(frozen=True)
class FeatureInputs:
    """One asset's inputs beyond its bars.

    Attributes
    ----------
    symbol
        The asset the bars belong to.
    calendar
        Its stored calendar: ``"equity"``, ``"fx"`` or ``"crypto"`` (24/7: no holidays).
    panel
        Bars of every symbol of the universe (this one included): ``symbol``, ``ts`` and OHLCV,
        sorted by ``(symbol, ts)``; ``None`` when the universe has one asset.
    sentiment
        The asset's sentiment rows: ``ts`` and Float64 score columns, sorted by ``ts``;
        ``None`` when there is no table for it.
    onchain
        The asset's on-chain rows: ``ts`` and Float64 metric columns, sorted by ``ts``;
        ``None`` when there is no table for it.
    """

    symbol: str
    calendar: str = "equity"
    panel: pl.DataFrame | None = None
    sentiment: pl.DataFrame | None = None
    onchain: pl.DataFrame | None = None

    def lacks(self, kind: str) -> bool:
        """Whether input ``kind`` (a key of ``INPUT_KINDS``) is missing.

        A US-equity asset always has a sentiment input: the packaged VIX series (the feature
        set then builds its fear/greed proxy alone when no sentiment table is given).
        """
        if kind == "bars":
            return False
        if kind == "panel":
            return self.panel is None or self.panel["symbol"].n_unique() < 2
        if kind == "sentiment":
            return self.sentiment is None and self.calendar != "equity"
        if kind == "onchain":
            return self.onchain is None
        raise KeyError(f"unknown input kind {kind!r}; known: {sorted(INPUT_KINDS)}")
