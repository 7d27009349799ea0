"""The cold tier: bars past an age move from the warm lake to an archive Delta table.

Where: the ``bars`` table under a lake's ``cold_root`` (``Lake(root, cold_root=...)``;
FACTORY_HOME's lake takes ``$FACTORY_COLD_URI``), a local folder or an object-store URI such
as ``s3://bucket/cold``. Credentials come from ``cold_storage_options`` or the environment
(``AWS_*``). On S3, deltalake 1.x commits with conditional writes (``If-None-Match``): no
locking provider and no ``AWS_S3_ALLOW_UNSAFE_RENAME`` are needed.

How: two commits, under the FACTORY_HOME writer lock. First the warm rows whose event time
``ts`` is before the cutoff, and which the cold table does not hold yet, are appended to the
cold table; then they are deleted from the warm table. Reads fall through the tiers
(`Lake.scan_bars`), so a read at any version returns the same rows before, during and after
a migration. A migration killed between its commits leaves rows in both tiers, which reads
deduplicate; the next migration copies nothing twice (rows are matched on ``(symbol, ts,
knowledge_ts)``) and completes the delete. The delete is bounded by the newest knowledge it
copied, so a row that reached the warm table after the copy is never dropped uncopied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
from deltalake import DeltaTable, write_deltalake

from factory.data.cold_record import record_cold_root
from factory.data.lake import BARS, COLD_URI_ENV, Lake
from factory.locking import writer_lock
from factory.paths import FactoryPaths

_ROW = ["symbol", "ts", "knowledge_ts"]
"""One stored bar row: a bar and when the lake learnt that value."""


class ColdTierNotConfiguredError(RuntimeError):
    """A migration was asked of a lake without a cold tier."""


@dataclass(frozen=True)
class MigrationSummary:
    """What one migration did.

    Attributes
    ----------
    cutoff
        Bars with ``ts`` before this moment (naive UTC) were moved.
    rows_copied
        Rows appended to the cold table by this migration.
    rows_deleted
        Rows deleted from the warm table (all of them held by the cold table).
    warm_version, cold_version
        The tables' versions afterwards (``None``: the table does not exist).
    """

    cutoff: datetime
    rows_copied: int
    rows_deleted: int
    warm_version: int | None
    cold_version: int | None

    def line(self) -> str:
        """One sentence for the CLI."""
        return (f"moved bars before {self.cutoff:%Y-%m-%d %H:%M} to the cold tier: "
                f"{self.rows_copied} rows copied, {self.rows_deleted} deleted from the warm "
                f"table; lake version {self.warm_version}, cold version {self.cold_version}")


def migrate_to_cold(paths: FactoryPaths, older_than: timedelta, *, lake: Lake | None = None,
                    now: datetime | None = None, wait: bool = True,
                    on_wait: Callable[[str], None] | None = None) -> MigrationSummary:
    """Move the bars older than ``older_than`` to the cold tier, under the writer lock.

    Parameters
    ----------
    paths
        The home whose writer lock is held.
    older_than
        Age, by event time ``ts``, past which bars move.
    lake
        The lake (default: ``Lake(paths.lake)``, whose cold tier is ``$FACTORY_COLD_URI``).
    now
        The moment ages are counted from (default: now, UTC).
    wait, on_wait
        As for `writer_lock`.

    Raises
    ------
    ColdTierNotConfiguredError
        If the lake has no cold tier.
    ValueError
        If ``older_than`` is negative.
    """
    lake = lake or Lake(paths.lake)
    if lake.cold_uri() is None:
        raise ColdTierNotConfiguredError(
            f"no cold tier for {lake.root}: set {COLD_URI_ENV} to a folder or s3:// URI")
    if older_than < timedelta(0):
        raise ValueError(f"--older-than must be zero or more days, got {older_than}")
    moment = now or datetime.now(UTC)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    cutoff = moment - older_than
    with writer_lock(paths, f"factory lake migrate (bars before {cutoff:%Y-%m-%d})",
                     wait=wait, on_wait=on_wait):
        record_cold_root(lake.root, lake.cold_root)  # from now on every read needs it
        copied, known_by = copy_to_cold(lake, cutoff)
        deleted = _drop_from_warm(lake, cutoff, known_by) if known_by is not None else 0
    cold_uri = lake.cold_uri()
    cold_version = (DeltaTable(cold_uri, storage_options=lake.cold_storage_options).version()
                    if DeltaTable.is_deltatable(cold_uri, lake.cold_storage_options) else None)
    return MigrationSummary(cutoff, copied, deleted, lake.version(), cold_version)


def copy_to_cold(lake: Lake, cutoff: datetime) -> tuple[int, datetime | None]:
    """The first step: append to the cold table the warm rows before ``cutoff`` it lacks.

    Returns
    -------
    copied, known_by
        Rows appended (one commit; none when the cold table holds them all) and the newest
        ``knowledge_ts`` among the warm rows before ``cutoff`` (``None``: there are none).
    """
    if lake.version(BARS) is None:
        return 0, None
    old = pl.scan_delta(lake.uri(BARS), storage_options=lake.storage_options).filter(
        pl.col("ts") < cutoff).collect()
    if old.is_empty():
        return 0, None
    cold_uri, options = lake.cold_uri(), lake.cold_storage_options
    missing = old
    if DeltaTable.is_deltatable(cold_uri, options):
        held = pl.scan_delta(cold_uri, storage_options=options).filter(
            pl.col("ts") < cutoff,
            pl.col("knowledge_ts").is_between(old["knowledge_ts"].min(),
                                              old["knowledge_ts"].max()),
        ).select(_ROW).collect()
        missing = old.join(held, on=_ROW, how="anti")
    if not missing.is_empty():
        write_deltalake(cold_uri, missing.sort(_ROW).to_arrow(), mode="append",
                        storage_options=options)
    return missing.height, old["knowledge_ts"].max()


def _drop_from_warm(lake: Lake, cutoff: datetime, known_by: datetime) -> int:
    """The second step: delete the copied rows from the warm table (one commit)."""
    warm = DeltaTable(lake.uri(BARS), storage_options=lake.storage_options)
    result = warm.delete(f"ts < '{cutoff.isoformat()}' AND "
                         f"knowledge_ts <= '{known_by.isoformat()}'")
    return int(result["num_deleted_rows"])
