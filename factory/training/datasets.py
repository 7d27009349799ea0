"""Feature cache: each (asset, feature set, lake version) is built once and shared by every
config that uses it, across runs too (the lake version is part of the key).

The dataset reference also carries the universe's bar frequency as the lake stored it, so
that metrics annualise from it rather than by counting bars (rule 10)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from factory.data.lake import Lake
from factory.data.names import safe_child
from factory.data.universe import universe_frequency
from feature_sets import build_features


@dataclass(frozen=True)
class DatasetRef:
    """Where a worker finds the cached bars and features of one lake version.

    Attributes
    ----------
    cache_root
        Root of the bars and features cache.
    lake_version
        Version of the lake's bars table the data comes from.
    symbols
        The universe.
    periods_per_year
        Bars per year of the universe's stored frequency: what metrics annualise with.
    bar_frequency
        Its label (``"1d"``, ``"1h"``, ...), for records.
    """

    cache_root: Path
    lake_version: int
    symbols: tuple[str, ...]
    periods_per_year: float
    bar_frequency: str

    def __post_init__(self) -> None:
        if not self.periods_per_year > 0:
            raise ValueError(f"periods_per_year must be positive, got {self.periods_per_year}")

    @classmethod
    def for_lake(
        cls, cache_root: Path, lake: Lake, version: int, symbols: Sequence[str]
    ) -> DatasetRef:
        """The reference of ``symbols`` at lake ``version``, with their stored frequency.

        Raises
        ------
        MixedFrequencyError
            If the symbols do not share one frequency (see ``universe_frequency``).
        """
        symbols = tuple(symbols)
        frequency = universe_frequency(lake.bar_frequencies(symbols, version=version), symbols)
        return cls(Path(cache_root), version, symbols, frequency.periods_per_year,
                   frequency.label)

    def bars_path(self) -> Path:
        return self.cache_root / "bars" / f"v{self.lake_version}.parquet"

    def features_path(self, feature_set: str, params: Mapping, symbol: str) -> Path:
        digest = hashlib.sha256(json.dumps(dict(params), sort_keys=True).encode()).hexdigest()
        # Symbols are checked at ingest; the path is checked again where it is built.
        folder = (self.cache_root / "features" / f"{feature_set}-{digest[:10]}"
                  / f"v{self.lake_version}")
        return safe_child(folder, f"{symbol}.parquet")


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
