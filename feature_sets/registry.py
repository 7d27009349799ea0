"""Name -> feature set module, imported lazily."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import polars as pl

FEATURE_SETS: dict[str, str] = {
    "raw_ohlcv": "feature_sets.raw_ohlcv",
    "technical": "feature_sets.technical",
}


def _module(name: str):
    if name not in FEATURE_SETS:
        raise KeyError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}")
    return importlib.import_module(FEATURE_SETS[name])


def build_features(name: str, bars: pl.DataFrame, params: Mapping[str, float] | None = None):
    """Build feature set ``name`` for one asset's bars (sorted by ``ts``).

    Returns
    -------
    pl.DataFrame
        ``ts`` and Float64 feature columns, one row per input bar.
    """
    if bars["symbol"].n_unique() > 1:
        raise ValueError(f"build_features({name!r}) takes one asset's bars at a time")
    frame = _module(name).build(bars.sort("ts"), **dict(params or {}))
    if "ret_1" not in frame.columns:
        raise ValueError(f"feature set {name!r} must provide the ret_1 column")
    return frame


def feature_names(frame: pl.DataFrame) -> tuple[str, ...]:
    """The feature columns of a built frame (everything except ``ts``)."""
    return tuple(c for c in frame.columns if c != "ts")
