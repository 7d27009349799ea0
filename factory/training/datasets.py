"""Feature cache: each (asset, feature set, lake version) is built once and shared by every
config that uses it, across runs too (the lake version is part of the key)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from factory.data.lake import Lake
from feature_sets import build_features


@dataclass(frozen=True)
class DatasetRef:
    """Where a worker finds the cached bars and features of one lake version."""

    cache_root: Path
    lake_version: int
    symbols: tuple[str, ...]

    def bars_path(self) -> Path:
        return self.cache_root / "bars" / f"v{self.lake_version}.parquet"

    def features_path(self, feature_set: str, params: Mapping, symbol: str) -> Path:
        digest = hashlib.sha256(json.dumps(dict(params), sort_keys=True).encode()).hexdigest()
        return (self.cache_root / "features" / f"{feature_set}-{digest[:10]}"
                / f"v{self.lake_version}" / f"{symbol}.parquet")


def _write_atomically(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    frame.write_parquet(partial)
    partial.replace(path)


def cache_bars(lake: Lake, ref: DatasetRef) -> Path:
    """Snapshot the lake version's bars of ``ref.symbols`` to Parquet (once per version)."""
    path = ref.bars_path()
    if not path.exists():
        bars = lake.read_bars(symbols=list(ref.symbols), version=ref.lake_version)
        _write_atomically(bars, path)
    return path


def cache_features(ref: DatasetRef, feature_set: str, params: Mapping) -> list[Path]:
    """Build ``feature_set`` for every symbol of ``ref`` unless already cached.

    Returns
    -------
    list of Path
        One Parquet file per symbol.
    """
    bars = load_bars(ref)
    paths = []
    for symbol in ref.symbols:
        path = ref.features_path(feature_set, params, symbol)
        if not path.exists():
            one = bars.filter(pl.col("symbol") == symbol)
            _write_atomically(build_features(feature_set, one, params), path)
        paths.append(path)
    return paths


def load_bars(ref: DatasetRef) -> pl.DataFrame:
    """The cached bars of ``ref`` (all symbols)."""
    return pl.read_parquet(ref.bars_path())


def load_features(ref: DatasetRef, feature_set: str, params: Mapping) -> dict[str, pl.DataFrame]:
    """Cached features of every symbol: symbol -> frame with ``ts`` and feature columns."""
    return {s: pl.read_parquet(ref.features_path(feature_set, params, s)) for s in ref.symbols}
