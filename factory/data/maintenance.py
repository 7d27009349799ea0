"""Upkeep of the warm (and cold) Delta tables: z-order, compaction and vacuum.

Every ingest, replay release and snapshot appends small files. Maintenance rewrites each
table with more than one file into few large ones: tables with ``symbol`` and ``ts`` columns
(the bars) z-ordered by ``(symbol, ts)``, so a read of a few symbols or a time span skips most
files; the others compacted. Neither changes what any read returns. Vacuum then deletes the
files that no version newer than the retention still uses.

Retention, the rule time travel needs: a run records the lake version it read and must read
it again to reproduce. After a vacuum with retention R, every version that was current at
some moment in the last R can still be read exactly; an older one may not (its files may be
gone). The reproducibility window is ``$FACTORY_TIME_TRAVEL_DAYS`` (default 7 days, deltalake's
own default retention); vacuum refuses a retention shorter than the window. Reading an old
version also needs its Delta log entries, which Delta keeps for ``delta.logRetentionDuration``
(30 days by default): a window longer than that needs the table property raised too.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from deltalake import DeltaTable

from factory.data.lake import Lake
from factory.locking import writer_lock
from factory.paths import FactoryPaths

TIME_TRAVEL_ENV = "FACTORY_TIME_TRAVEL_DAYS"
DEFAULT_TIME_TRAVEL = timedelta(days=7)
"""deltalake's default ``delta.deletedFileRetentionDuration``."""
Z_ORDER = ("symbol", "ts")


@dataclass(frozen=True)
class TableMaintenance:
    """What maintenance did to one table.

    Attributes
    ----------
    uri
        The table.
    operation
        ``"z-order (symbol, ts)"``, ``"compact"`` or ``"none"`` (a single file needs neither).
    files_removed, files_added
        Data files rewritten, and the files that replaced them.
    files_vacuumed
        Unused files older than the retention deleted.
    version
        The table's version afterwards.
    """

    uri: str
    operation: str
    files_removed: int
    files_added: int
    files_vacuumed: int
    version: int

    def line(self) -> str:
        """One sentence for the CLI and the flow's log."""
        rewritten = (f"{self.files_removed} files into {self.files_added}"
                     if self.operation != "none" else "nothing to rewrite")
        return (f"{self.uri}: {self.operation}, {rewritten}; vacuumed {self.files_vacuumed} "
                f"files; version {self.version}")


@dataclass(frozen=True)
class MaintenanceSummary:
    """What one maintenance pass did, table by table, and the retention it kept."""

    retention: timedelta
    tables: tuple[TableMaintenance, ...]

    @property
    def files_compacted(self) -> int:
        """Data files rewritten into larger ones, over all tables."""
        return sum(t.files_removed for t in self.tables)

    def lines(self) -> list[str]:
        """One line per table, then the retention."""
        return [t.line() for t in self.tables] + [
            f"kept every version of the last {_days(self.retention)} (retention)"]

    def to_dict(self) -> dict:
        """Plain JSON-able values (the flow's result)."""
        return {"retention_hours": self.retention.total_seconds() / 3600,
                "files_compacted": self.files_compacted,
                "tables": [asdict(t) for t in self.tables]}


def time_travel_window() -> timedelta:
    """How far back every lake version must stay readable: ``$FACTORY_TIME_TRAVEL_DAYS``.

    Raises
    ------
    ValueError
        If the variable is not a number of days, zero or more.
    """
    raw = os.environ.get(TIME_TRAVEL_ENV)
    if raw is None:
        return DEFAULT_TIME_TRAVEL
    try:
        days = float(raw)
    except ValueError:
        days = -1.0
    if not days >= 0:
        raise ValueError(f"{TIME_TRAVEL_ENV}={raw!r}: expected a number of days, zero or more")
    return timedelta(days=days)


def check_retention(retention: timedelta) -> timedelta:
    """Return ``retention`` if it keeps the time-travel window, else refuse it.

    Raises
    ------
    ValueError
        If ``retention`` is shorter than `time_travel_window`.
    """
    window = time_travel_window()
    if retention < window:
        raise ValueError(
            f"retention {_days(retention)} is shorter than the time-travel window "
            f"{_days(window)} ({TIME_TRAVEL_ENV}): runs that recorded a newer lake version "
            "could no longer reproduce; keep at least the window or lower it")
    return retention


def maintain(lake: Lake, retention: timedelta | None = None) -> MaintenanceSummary:
    """Z-order or compact, then vacuum, every Delta table of the lake and its cold tier.

    Parameters
    ----------
    lake
        The lake; every table under a local root (only ``bars`` and ``symbols`` under an
        object-store root), plus the cold ``bars`` table when there is one.
    retention
        Keep the files any version of this recent past uses (default: the time-travel
        window; shorter is refused).
    """
    retention = check_retention(time_travel_window() if retention is None else retention)
    done = [_maintain_table(uri, lake.storage_options, retention) for uri in _warm_tables(lake)]
    cold = lake.cold_uri()
    if cold is not None and DeltaTable.is_deltatable(cold, lake.cold_storage_options):
        done.append(_maintain_table(cold, lake.cold_storage_options, retention))
    return MaintenanceSummary(retention, tuple(done))


def maintain_home(paths: FactoryPaths, retention: timedelta | None = None, *,
                  lake: Lake | None = None, wait: bool = True,
                  on_wait: Callable[[str], None] | None = None) -> MaintenanceSummary:
    """`maintain` FACTORY_HOME's lake (default ``Lake(paths.lake)``) under the writer lock."""
    with writer_lock(paths, "factory lake maintain", wait=wait, on_wait=on_wait):
        return maintain(lake or Lake(paths.lake), retention)


def _warm_tables(lake: Lake) -> list[str]:
    """The lake's Delta tables: every one under a local root, else the bars and symbols."""
    if "://" in lake.root:
        candidates = [lake.uri("bars"), lake.uri("symbols")]
    else:
        root = Path(lake.root)
        candidates = sorted(str(p) for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [uri for uri in candidates if DeltaTable.is_deltatable(uri, lake.storage_options)]


def _maintain_table(uri: str, options: dict[str, str] | None,
                    retention: timedelta) -> TableMaintenance:
    """Rewrite a table of several files (z-order when it has the columns), then vacuum."""
    table = DeltaTable(uri, storage_options=options)
    operation, metrics = "none", {"numFilesRemoved": 0, "numFilesAdded": 0}
    if len(table.file_uris()) > 1:
        columns = {field.name for field in table.schema().fields}
        if columns.issuperset(Z_ORDER):
            operation, metrics = "z-order (symbol, ts)", table.optimize.z_order(list(Z_ORDER))
        else:
            operation, metrics = "compact", table.optimize.compact()
    table = DeltaTable(uri, storage_options=options)
    hours = math.ceil(retention.total_seconds() / 3600)
    # Our own minimum (check_retention) replaces deltalake's fixed 7 days.
    vacuumed = table.vacuum(retention_hours=hours, dry_run=False,
                            enforce_retention_duration=False)
    return TableMaintenance(uri, operation, int(metrics["numFilesRemoved"]),
                            int(metrics["numFilesAdded"]), len(vacuumed),
                            DeltaTable(uri, storage_options=options).version())


def _days(span: timedelta) -> str:
    """``7 days``, ``1 day``, ``0.5 days``."""
    days = span.total_seconds() / 86_400
    return f"{days:g} day" + ("" if days == 1 else "s")
