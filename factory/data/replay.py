"""A replay feed: history held back at ingest and released into the lake bar by bar.

For the demo and the tests, live evaluation needs bars that reach the lake after the models
were trained. `hold_back` keeps the last timestamps of a universe out of the initial
ingest and parks them in ``held_back.parquet`` in a folder under FACTORY_HOME;
`release` ingests the next few of them, as a data vendor would, at whatever pace its caller
chooses. A "bar" here is one timestamp of the universe: one row per symbol that has it.

What is already released is read from the lake itself (each symbol's latest stored ``ts``),
never from the cursor alone: a process killed after the lake committed a release but before
``cursor.json`` was rewritten neither repeats nor skips bars on the next release. The cursor
records progress for people and for `hold_back`, which refuses to replace a held-back set
that is not fully released. Both files are written to a temporary name and renamed, so a
kill leaves either the old file or the new one. Callers hold the FACTORY_HOME writer lock
(one writer at a time), as for any ingest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from factory.data.lake import BARS, Lake
from factory.data.schema import BAR_COLUMNS, normalise_bars

HELD_BACK = "held_back.parquet"
CURSOR = "cursor.json"
NO_REPLAY = "no held-back bars: ingest with --hold-back N first"


class NoHeldBackBarsError(FileNotFoundError):
    """Bars were released from a folder that holds none back."""


@dataclass(frozen=True)
class ReleaseResult:
    """What one release did.

    Attributes
    ----------
    released_bars : int
        Timestamps ingested by this call (0 when nothing remained).
    through : datetime or None
        The latest held-back timestamp now in the lake, by this call or an earlier one;
        None while none is.
    remaining : int
        Held-back timestamps still to release.
    lake_version : int or None
        The bars table's version after the call (unchanged when nothing was released).
    """

    released_bars: int
    through: datetime | None
    remaining: int
    lake_version: int | None


def hold_back(folder: Path, bars: pl.DataFrame, n_bars: int) -> pl.DataFrame:
    """Keep the last ``n_bars`` timestamps of ``bars`` for later release; return the rest.

    The held-back bars go to ``folder/held_back.parquet`` and the progress cursor is reset.
    Holding back the very same bars again changes nothing (an ingest command may be re-run).

    Parameters
    ----------
    folder : Path
        The replay folder, under FACTORY_HOME (for instance ``paths.home / "replay"``).
    bars : pl.DataFrame
        Bars of the whole universe, in any form ``normalise_bars`` accepts.
    n_bars : int
        Distinct timestamps (over all symbols) to hold back.

    Returns
    -------
    pl.DataFrame
        The normalised bars before the held-back ones, in the input's row order (with its
        ``file``/``line`` provenance), for the caller to ingest.

    Raises
    ------
    ValueError
        If ``n_bars`` is not between 1 and the number of distinct timestamps minus one, or
        a different held-back set in ``folder`` is not fully released yet.
    DataQualityError
        If ``bars`` cannot be normalised.
    """
    folder = Path(folder)
    frame = normalise_bars(bars, "hold-back", sort=False)
    times = frame["ts"].unique().sort()
    if not 1 <= n_bars < times.len():
        raise ValueError(f"hold back between 1 and {times.len() - 1} bars (the bars have "
                         f"{times.len()} distinct timestamps), got {n_bars}")
    cutoff = times[-n_bars]
    held = frame.filter(pl.col("ts") >= cutoff).sort("symbol", "ts")
    existing = _read_held(folder)
    if existing is None or not _bars_of(existing).equals(_bars_of(held)):
        if existing is not None and not _fully_released(folder, existing):
            raise ValueError(
                f"{folder / HELD_BACK} holds other bars that are not fully released yet; "
                "release them first (or delete that folder to start the replay over)")
        folder.mkdir(parents=True, exist_ok=True)
        _replace(folder / HELD_BACK, held.write_parquet)
        _write_cursor(folder, held, through=None, remaining=n_bars)
    return frame.filter(pl.col("ts") < cutoff)


def release(folder: Path, lake: Lake, n_bars: int, source: str = "replay") -> ReleaseResult:
    """Ingest the next ``n_bars`` held-back timestamps into ``lake``, then advance the cursor.

    Parameters
    ----------
    folder : Path
        The replay folder `hold_back` wrote.
    lake : Lake
        The lake to release into (``Lake.ingest_bars`` validates and commits atomically).
    n_bars : int
        Timestamps to release, at least 1; fewer when fewer remain.
    source : str
        The source label stored with the released rows.

    Returns
    -------
    ReleaseResult

    Raises
    ------
    NoHeldBackBarsError
        If ``folder`` holds no held-back bars.
    ValueError
        If ``n_bars`` is below 1.
    DataQualityError
        If the lake refuses the bars (nothing is written then).
    """
    if n_bars < 1:
        raise ValueError(f"release at least 1 bar, got {n_bars}")
    held = _held(folder)
    pending = _pending(held, lake)
    times = pending["ts"].unique().sort()
    batch = pending.filter(pl.col("ts").is_in(times.head(n_bars).implode()))
    released = min(n_bars, times.len())
    already = held.join(pending, on=["symbol", "ts"], how="anti")
    version = lake.ingest_bars(batch, source).version if batch.height else lake.version()
    in_lake = pl.concat([already["ts"], batch["ts"]])
    through = in_lake.max() if in_lake.len() else None
    _write_cursor(Path(folder), held, through=through, remaining=times.len() - released)
    return ReleaseResult(released_bars=released, through=through,
                         remaining=times.len() - released, lake_version=version)


def remaining(folder: Path, lake: Lake) -> int:
    """Held-back timestamps not yet in ``lake``.

    Raises
    ------
    NoHeldBackBarsError
        If ``folder`` holds no held-back bars.
    """
    return _pending(_held(folder), lake)["ts"].n_unique()


def _held(folder: Path) -> pl.DataFrame:
    held = _read_held(Path(folder))
    if held is None:
        raise NoHeldBackBarsError(f"{Path(folder) / HELD_BACK}: {NO_REPLAY}")
    return held


def _read_held(folder: Path) -> pl.DataFrame | None:
    path = folder / HELD_BACK
    return pl.read_parquet(path) if path.exists() else None


def _pending(held: pl.DataFrame, lake: Lake) -> pl.DataFrame:
    """Held-back rows after their symbol's latest bar in the lake (all rows if it has none)."""
    if lake.version(BARS) is None:
        return held
    stored = (pl.scan_delta(lake.uri(BARS), storage_options=lake.storage_options)
              .filter(pl.col("symbol").is_in(held["symbol"].unique().implode()))
              .group_by("symbol").agg(pl.col("ts").max().alias("stored_through")).collect())
    joined = held.join(stored, on="symbol", how="left")
    after = pl.col("stored_through").is_null() | (pl.col("ts") > pl.col("stored_through"))
    return joined.filter(after).select(held.columns)


def _bars_of(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(BAR_COLUMNS).sort("symbol", "ts")


def _digest(held: pl.DataFrame) -> str:
    """A fingerprint of the held-back bars' values, independent of file encoding."""
    digest = hashlib.sha256()
    for name, column in _bars_of(held).to_dict().items():
        digest.update(name.encode())
        if column.dtype == pl.Utf8:
            digest.update("\n".join(column.to_list()).encode())
        else:
            digest.update(column.to_physical().to_numpy().tobytes())
    return digest.hexdigest()


def _fully_released(folder: Path, held: pl.DataFrame) -> bool:
    """Whether the cursor says every bar of ``held`` was released."""
    path = folder / CURSOR
    if not path.exists():
        return False
    cursor = json.loads(path.read_text())
    return cursor.get("held_back_sha256") == _digest(held) and cursor.get("remaining") == 0


def _write_cursor(folder: Path, held: pl.DataFrame, *, through: datetime | None,
                  remaining: int) -> None:
    cursor = {"held_back_sha256": _digest(held),
              "through": through.isoformat() if through is not None else None,
              "remaining": remaining}
    _replace(folder / CURSOR, lambda path: path.write_text(json.dumps(cursor, indent=2)))


def _replace(path: Path, write) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename it over."""
    partial = path.with_name(f".{path.name}.partial")
    write(partial)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)
