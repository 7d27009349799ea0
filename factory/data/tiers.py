"""The hot tier: each symbol's recent bars in memory, for the snapshot every 5 minutes.

A snapshot needs only the newest bars of a universe and a few hundred before them, yet
reading them from Delta means scanning every file of every symbol. The hot tier keeps, per
symbol, a suffix of its bars (every bar from some moment on) as of a lake version, and brings
it up to date by reading only the rows learnt since (``knowledge_ts`` later than the version's
newest): each ingest commits one knowledge time, so Delta's file statistics skip every older
file. The suffix is cut back, before new rows are added, to the last `DEFAULT_WINDOW` of bars
and never fewer than the ``keep_bars`` its reader asks for.

Where: Redis when ``$FACTORY_HOT_URL`` is set (``redis://host:6379/0``), so that every
process that serves the snapshot shares it; otherwise a cache in this process. Entries are
stored as Arrow IPC bytes and JSON, never pickle, under a key prefix derived from
FACTORY_HOME, so homes sharing a Redis never see each other's bars. The tier is a cache:
what a reader gets from it equals a read of the lake at the same version, whatever the tier
held before (an entry of another table, or of a newer version, is rebuilt from the lake).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import polars as pl
import redis
from deltalake import DeltaTable

from factory.data.lake import BARS, Lake, latest_knowledge
from factory.data.schema import BAR_COLUMNS
from factory.paths import FactoryPaths

HOT_URL_ENV = "FACTORY_HOT_URL"
DEFAULT_WINDOW = timedelta(hours=24)
HOT_COLUMNS: tuple[str, ...] = (*BAR_COLUMNS, "knowledge_ts")
_KEY = ["symbol", "ts"]


@dataclass(frozen=True)
class HotEntry:
    """One symbol's recent bars as of a lake version.

    Attributes
    ----------
    bars
        ``HOT_COLUMNS``, the latest known row of every bar from the first one held on,
        sorted by ``ts``.
    lake_version
        The bars-table version they were read at.
    known_through
        The newest ``knowledge_ts`` in the lake at that version (``None``: none yet).
    table_id
        The bars table's Delta id: an entry of a table since replaced is never used.
    complete
        Whether ``bars`` holds every bar of the symbol, not only recent ones.
    """

    bars: pl.DataFrame
    lake_version: int
    known_through: datetime | None
    table_id: str
    complete: bool

    def covers(self, after: datetime, history_bars: int) -> bool:
        """Whether it holds every bar after ``after`` and the ``history_bars`` before it."""
        return self.complete or self.bars.filter(pl.col("ts") <= after).height >= history_bars


class HotTier(Protocol):
    """Where hot entries live: one per symbol."""

    def load(self, symbol: str) -> HotEntry | None:
        """The symbol's entry, or ``None``."""

    def store(self, symbol: str, entry: HotEntry) -> None:
        """Replace the symbol's entry."""

    def clear(self) -> None:
        """Forget every entry of this tier."""


class InProcessHotTier:
    """Hot entries in this process's memory."""

    def __init__(self) -> None:
        self._entries: dict[str, HotEntry] = {}

    def load(self, symbol: str) -> HotEntry | None:
        return self._entries.get(symbol)

    def store(self, symbol: str, entry: HotEntry) -> None:
        self._entries[symbol] = entry

    def clear(self) -> None:
        self._entries.clear()


class RedisHotTier:
    """Hot entries in Redis: per symbol a hash of Arrow IPC bytes and JSON metadata.

    Parameters
    ----------
    url
        ``redis://[user:password@]host:port/db``.
    prefix
        Prepended to every key (see `home_prefix`).
    """

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self._client = redis.Redis.from_url(url)

    def load(self, symbol: str) -> HotEntry | None:
        fields = self._call(lambda: self._client.hgetall(self.prefix + symbol))
        if not fields:
            return None
        meta = json.loads(fields[b"meta"])
        known = meta["known_through"]
        return HotEntry(pl.read_ipc(io.BytesIO(fields[b"ipc"])), meta["lake_version"],
                        datetime.fromisoformat(known) if known else None, meta["table_id"],
                        meta["complete"])

    def store(self, symbol: str, entry: HotEntry) -> None:
        buffer = io.BytesIO()
        entry.bars.write_ipc(buffer)
        known = entry.known_through.isoformat() if entry.known_through else None
        meta = {"lake_version": entry.lake_version, "known_through": known,
                "table_id": entry.table_id, "complete": entry.complete}
        fields = {"ipc": buffer.getvalue(), "meta": json.dumps(meta)}
        self._call(lambda: self._client.hset(self.prefix + symbol, mapping=fields))

    def clear(self) -> None:
        keys = self._call(lambda: list(self._client.scan_iter(match=self.prefix + "*")))
        if keys:
            self._call(lambda: self._client.delete(*keys))

    def _call(self, request: Callable[[], Any]) -> Any:
        """Send a request; an unreachable server is an error that names the setting."""
        try:
            return request()
        except redis.ConnectionError as err:
            raise ConnectionError(f"the hot tier ({HOT_URL_ENV}) is unreachable: {err}") from err


_in_process: dict[str, InProcessHotTier] = {}


def home_prefix(paths: FactoryPaths) -> str:
    """``factory:<16 hex digits of FACTORY_HOME's hash>:hot:``, one per home."""
    digest = hashlib.sha256(str(paths.home).encode()).hexdigest()[:16]
    return f"factory:{digest}:hot:"


def hot_tier(paths: FactoryPaths) -> HotTier:
    """The home's hot tier: Redis at ``$FACTORY_HOT_URL``, else this process's cache."""
    prefix = home_prefix(paths)
    url = os.environ.get(HOT_URL_ENV)
    if url:
        return RedisHotTier(url, prefix)
    return _in_process.setdefault(prefix, InProcessHotTier())


def refresh(hot: HotTier, lake: Lake, symbols: Sequence[str], version: int, *,
            keep_bars: int = 0, window: timedelta = DEFAULT_WINDOW) -> dict[str, HotEntry]:
    """Bring the symbols' entries up to lake ``version`` and return them.

    Parameters
    ----------
    hot
        The tier to read and update.
    lake
        The lake (reads fall through its tiers).
    symbols
        The symbols wanted.
    version
        The bars version to be current with.
    keep_bars
        Before adding new rows, keep at least this many of a symbol's last bars.
    window
        Before adding new rows, keep at least the bars this close to a symbol's newest.

    Returns
    -------
    dict of str to HotEntry
        One per symbol; a symbol the lake does not hold has an empty, complete entry.
    """
    scan = lake.scan_bars(version)
    table_id = DeltaTable(lake.uri(BARS), version=version,
                          storage_options=lake.storage_options).metadata().id
    known = lake.known_through(version)
    entries = {s: hot.load(s) for s in symbols}
    usable = {s: e for s, e in entries.items() if e is not None and e.table_id == table_id
              and e.lake_version <= version}
    current = {s: e for s, e in usable.items() if e.lake_version == version}
    behind = {s: e for s, e in usable.items() if s not in current}
    rebuilt = [s for s in symbols if s not in usable]
    updated = {**_read_whole(scan, rebuilt), **_catch_up(scan, behind, keep_bars, window)}
    for symbol, (bars, complete) in updated.items():
        entry = HotEntry(bars, version, known, table_id, complete)
        hot.store(symbol, entry)
        current[symbol] = entry
    return {s: current[s] for s in symbols}


def _read_whole(scan: pl.LazyFrame, symbols: list[str]) -> dict[str, tuple[pl.DataFrame, bool]]:
    """Every bar of ``symbols``: complete entries."""
    if not symbols:
        return {}
    bars = _latest(scan.filter(pl.col("symbol").is_in(symbols)))
    parts = bars.partition_by("symbol", as_dict=True)
    empty = bars.clear()
    return {s: (parts.get((s,), empty), True) for s in symbols}


def _catch_up(scan: pl.LazyFrame, behind: dict[str, HotEntry], keep_bars: int,
              window: timedelta) -> dict[str, tuple[pl.DataFrame, bool]]:
    """Cut each entry back, then merge in the rows learnt since its version."""
    if not behind:
        return {}
    since = [e.known_through for e in behind.values() if e.known_through is not None]
    new = scan.filter(pl.col("symbol").is_in(list(behind)))
    if len(since) == len(behind):
        new = new.filter(pl.col("knowledge_ts") > min(since))
    new = new.select(HOT_COLUMNS).collect()
    merged = {}
    for symbol, entry in behind.items():
        kept = _cut(entry, keep_bars, window)
        rows = new.filter(pl.col("symbol") == symbol)
        if entry.known_through is not None:
            rows = rows.filter(pl.col("knowledge_ts") > entry.known_through)
        if not kept.complete:
            rows = rows.filter(pl.col("ts") >= kept.bars["ts"].min())
        merged[symbol] = (_latest(pl.concat([kept.bars, rows]).lazy()), kept.complete)
    return merged


def _cut(entry: HotEntry, keep_bars: int, window: timedelta) -> HotEntry:
    """Keep the bars within ``window`` of the newest, and at least the last ``keep_bars``."""
    bars = entry.bars
    if bars.is_empty():
        return entry
    recent = (pl.col("ts") >= bars["ts"].max() - window) | (
        pl.int_range(pl.len()) >= bars.height - keep_bars)
    kept = bars.filter(recent)
    return replace(entry, bars=kept, complete=entry.complete and kept.height == bars.height)


def _latest(scan: pl.LazyFrame) -> pl.DataFrame:
    """The latest known row of each bar, sorted."""
    return latest_knowledge(scan).select(HOT_COLUMNS).sort(_KEY).collect()
