"""Feature cache: each (asset, feature set, lake version) is built once and shared by every
config that uses it, across runs too (the lake version, and the versions of the side tables a
feature set reads, are part of the key).

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
from factory.data.span import clip_to_span, span_tag
from factory.data.universe import universe_frequency
from factory.training.feature_inputs import SIDE_TABLES, inputs_for, missing_inputs
from feature_sets import build_features
from feature_sets import feature_set as registered_feature_set


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
    calendar
        The universe's calendar (``"equity"``, ``"fx"``, ``"crypto"``).
    side_versions
        ``(table, Delta version)`` of each side table (``sentiment``, ``onchain``) the lake
        held when the reference was made: feature sets read them at these versions.
    data_start, data_end
        The span of history the cached bars keep (``data.start``, ``data.end``: a date,
        ``common`` or None, see ``factory.data.span``); every spec trained on the reference
        carries the same.
    """

    cache_root: Path
    lake_version: int
    symbols: tuple[str, ...]
    periods_per_year: float
    bar_frequency: str
    calendar: str = "equity"
    side_versions: tuple[tuple[str, int], ...] = ()
    data_start: str | None = None
    data_end: str | None = None

    def __post_init__(self) -> None:
        if not self.periods_per_year > 0:
            raise ValueError(f"periods_per_year must be positive, got {self.periods_per_year}")

    @classmethod
    def for_lake(
        cls, cache_root: Path, lake: Lake, version: int, symbols: Sequence[str],
        side_versions: Mapping[str, int] | None = None,
        span: tuple[str | None, str | None] = (None, None),
    ) -> DatasetRef:
        """The reference of ``symbols`` at lake ``version``, with their stored frequency.

        ``side_versions`` pins the side tables (default: their latest versions, where they
        exist); ``span`` is ``(data.start, data.end)``.

        Raises
        ------
        MixedFrequencyError
            If the symbols do not share one frequency (see ``universe_frequency``).
        """
        symbols = tuple(symbols)
        frequency = universe_frequency(lake.bar_frequencies(symbols, version=version), symbols)
        if side_versions is None:
            side_versions = {t: lake.version(t) for t in SIDE_TABLES}
        pinned = tuple(sorted((t, int(v)) for t, v in side_versions.items() if v is not None))
        return cls(Path(cache_root), version, symbols, frequency.periods_per_year,
                   frequency.label, frequency.calendar, pinned, *span)

    def bars_path(self) -> Path:
        return self.cache_root / "bars" / f"v{self.lake_version}{self._span_tag}.parquet"

    @property
    def _span_tag(self) -> str:
        return span_tag(self.data_start, self.data_end)

    def side_path(self, table: str) -> Path:
        """The cached rows of side table ``table`` at its pinned version."""
        return self.cache_root / "side" / f"{table}-v{dict(self.side_versions)[table]}.parquet"

    def features_path(self, feature_set: str, params: Mapping, symbol: str) -> Path:
        digest = hashlib.sha256(json.dumps(dict(params), sort_keys=True).encode()).hexdigest()
        needs = registered_feature_set(feature_set).needs
        versions = "".join(f"-{t}{v}" for t, v in self.side_versions if t in needs)
        # Symbols are checked at ingest; the path is checked again where it is built.
        folder = (self.cache_root / "features" / f"{feature_set}-{digest[:10]}"
                  / f"v{self.lake_version}{self._span_tag}{versions}")
        return safe_child(folder, f"{symbol}.parquet")


def _write_atomically(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    frame.write_parquet(partial)
    partial.replace(path)


def cache_bars(lake: Lake, ref: DatasetRef) -> Path:
    """Snapshot the lake version's bars of ``ref.symbols`` to Parquet (once per version),
    and the universe's rows of each pinned side table."""
    from factory.data.side_tables import read_side_table

    path = ref.bars_path()
    if not path.exists():
        bars = lake.read_bars(symbols=list(ref.symbols), version=ref.lake_version)
        _write_atomically(clip_to_span(bars, ref.data_start, ref.data_end), path)
    for table, version in ref.side_versions:
        if not ref.side_path(table).exists():
            rows = read_side_table(lake, table, list(ref.symbols), version=version)
            _write_atomically(rows, ref.side_path(table))
    return path


def load_side_tables(ref: DatasetRef) -> dict[str, pl.DataFrame]:
    """The cached side tables of ``ref``: table name -> rows of the universe."""
    return {table: pl.read_parquet(ref.side_path(table)) for table, _ in ref.side_versions}


def universe_missing_inputs(ref: DatasetRef) -> dict[str, str]:
    """Input kind -> why the universe of ``ref`` lacks it (from the cached data)."""
    return missing_inputs(ref.symbols, ref.calendar, load_bars(ref), load_side_tables(ref))


def lake_missing_inputs(lake: Lake, symbols: Sequence[str],
                        span: tuple[str | None, str | None] = (None, None)) -> dict[str, str]:
    """Input kind -> why ``symbols`` lack it in the lake's latest data over ``span``
    (``(data.start, data.end)``; no cache written)."""
    from factory.data.side_tables import read_side_table

    calendar = universe_frequency(lake.bar_frequencies(symbols), symbols).calendar
    side = {t: read_side_table(lake, t, list(symbols)) for t in SIDE_TABLES
            if lake.version(t) is not None}
    bars = clip_to_span(lake.read_bars(symbols=list(symbols)), *span)
    return missing_inputs(tuple(symbols), calendar, bars, side)


def cache_features(ref: DatasetRef, feature_set: str, params: Mapping) -> list[Path]:
    """Build ``feature_set`` for every symbol of ``ref`` unless already cached.

    Returns
    -------
    list of Path
        One Parquet file per symbol.
    """
    paths = [ref.features_path(feature_set, params, symbol) for symbol in ref.symbols]
    if all(path.exists() for path in paths):
        return paths
    bars, side = load_bars(ref), load_side_tables(ref)
    frames = [build_features(feature_set, bars.filter(pl.col("symbol") == symbol), params,
                             inputs_for(symbol, feature_set, ref.calendar, bars, side))
              for symbol in ref.symbols]
    kept = shared_columns(frames)
    for frame, path in zip(frames, paths, strict=True):
        _write_atomically(frame.select(kept), path)
    return paths


def shared_columns(frames: Sequence[pl.DataFrame]) -> list[str]:
    """The columns every asset has values for: a feature null throughout one asset's bars
    (a VIX proxy outside US equities, exchange flows an on-chain table lacks) is left out
    for all of them, since a window with a null is never used."""
    return [c for c in frames[0].columns
            if c in ("ts", "ret_1") or all(f[c].null_count() < f.height for f in frames)]


def load_bars(ref: DatasetRef) -> pl.DataFrame:
    """The cached bars of ``ref`` (all symbols)."""
    return pl.read_parquet(ref.bars_path())


def load_features(ref: DatasetRef, feature_set: str, params: Mapping) -> dict[str, pl.DataFrame]:
    """Cached features of every symbol: symbol -> frame with ``ts`` and feature columns."""
    return {s: pl.read_parquet(ref.features_path(feature_set, params, s)) for s in ref.symbols}
