"""A bitemporal Delta Lake of bars, plus plain append-only tables beside it.

Every bar row carries two times: ``ts``, when the bar happened (event time), and
``knowledge_ts``, when the lake learnt it (the ingest commit time). Rows are never updated
in place: a correction is a new row for the same ``(symbol, ts)`` with a later
``knowledge_ts``. Reading "as of" a time keeps, for each bar, the latest row known by then,
so a backtest can see exactly what was known when, and Delta versions give time travel on
top (``read_bars(version=...)``).

Paths are kept as strings so the same code works on local directories and on ``s3://``
URIs (pass credentials through ``storage_options``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable, write_deltalake

from factory.data.quality import validate_bars
from factory.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS, normalise_bars

BARS = "bars"
LAKE_COLUMNS: tuple[str, ...] = (*BAR_COLUMNS, "knowledge_ts", "source")
_KEY = ["symbol", "ts"]


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did.

    Attributes
    ----------
    version
        Delta version of the bars table after the ingest (unchanged if nothing was new;
        ``None`` only when an empty batch met a table that does not exist yet).
    rows_added
        Rows appended: new bars plus corrections.
    rows_unchanged
        Incoming bars identical to what the lake already knew (skipped).
    rows_corrected
        Incoming bars whose values differ from the known ones (appended as corrections).
    """

    version: int | None
    rows_added: int
    rows_unchanged: int
    rows_corrected: int


class LakeTableMissingError(FileNotFoundError):
    """A table was read before anything was written to it."""


def _utc_naive(moment: datetime) -> datetime:
    """Express a datetime as naive UTC (naive input is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


class Lake:
    """Delta tables under one root: ``bars`` (bitemporal) and generic append-only tables.

    Parameters
    ----------
    root
        Local directory or object-store URI (``s3://bucket/lake``) holding one Delta table
        per sub-directory.
    storage_options
        Passed to deltalake for object stores (credentials, endpoint, region).
    """

    def __init__(self, root: Path | str, storage_options: dict[str, str] | None = None) -> None:
        self.root = str(root).rstrip("/")
        self.storage_options = storage_options

    def uri(self, table: str) -> str:
        """Return the location of ``table`` under the lake root."""
        return f"{self.root}/{table}"

    def version(self, table: str = BARS) -> int | None:
        """Return the table's latest Delta version, or ``None`` if it does not exist yet."""
        if not DeltaTable.is_deltatable(self.uri(table), self.storage_options):
            return None
        return DeltaTable(self.uri(table), storage_options=self.storage_options).version()

    def symbols(self) -> list[str]:
        """Return the sorted symbols in the bars table (empty if there is none yet)."""
        if self.version(BARS) is None:
            return []
        frame = self._scan(BARS).select(pl.col("symbol").unique()).collect()
        return sorted(frame["symbol"].to_list())

    def ingest_bars(self, df: pl.DataFrame, source: str) -> IngestResult:
        """Validate bars and append what is new or corrected, in one atomic commit.

        Parameters
        ----------
        df
            Bars with the canonical columns (any column types ``normalise_bars`` accepts).
        source
            File or label the bars came from; quoted in errors and stored per row.

        Returns
        -------
        IngestResult
            The resulting version and row counts. Ingesting data the lake already knows adds
            nothing and creates no new version.

        Raises
        ------
        DataQualityError
            If the bars fail validation; nothing is written and the version is unchanged.
        """
        incoming = normalise_bars(df, source, sort=False)
        validate_bars(incoming, source)
        incoming = incoming.sort(_KEY)
        current_version = self.version(BARS)
        if current_version is None:
            new, corrected = incoming, incoming.clear()
        else:
            new, corrected = self._new_and_corrected(incoming)
        unchanged = incoming.height - new.height - corrected.height
        additions = pl.concat([new, corrected])
        if additions.is_empty():
            return IngestResult(current_version, 0, unchanged, 0)
        stamped = additions.sort(_KEY).with_columns(
            knowledge_ts=pl.lit(self._commit_time(), dtype=pl.Datetime("us")),
            source=pl.lit(source, dtype=pl.Utf8),
        )
        version = self._append(BARS, stamped)
        return IngestResult(version, stamped.height, unchanged, corrected.height)

    def read_bars(
        self,
        symbols: list[str] | None = None,
        as_of: datetime | None = None,
        version: int | None = None,
    ) -> pl.DataFrame:
        """Read bars as they were known at a point in time.

        Parameters
        ----------
        symbols
            Symbols to read (default: all).
        as_of
            Keep only rows known at or before this moment (naive means UTC); default: all.
        version
            Read this Delta version of the table (time travel); default: the latest.

        Returns
        -------
        pl.DataFrame
            ``BAR_COLUMNS``, one row per ``(symbol, ts)`` (the latest known value), sorted by
            ``(symbol, ts)``.

        Raises
        ------
        LakeTableMissingError
            If no bars have been ingested yet.
        """
        scan = self._scan(BARS, version)
        if symbols is not None:
            scan = scan.filter(pl.col("symbol").is_in(list(symbols)))
        if as_of is not None:
            scan = scan.filter(pl.col("knowledge_ts") <= _utc_naive(as_of))
        return _latest_knowledge(scan).select(BAR_COLUMNS).sort(_KEY).collect()

    def append_table(self, name: str, df: pl.DataFrame) -> int:
        """Append ``df`` to table ``name`` (created on first use) and return the new version."""
        return self._append(name, df)

    def read_table(self, name: str, version: int | None = None) -> pl.DataFrame:
        """Read table ``name`` (optionally at a Delta ``version``) into memory."""
        return self._scan(name, version).collect()

    def _scan(self, table: str, version: int | None = None) -> pl.LazyFrame:
        """Lazily scan a table, raising a helpful error if it does not exist."""
        if self.version(table) is None:
            hint = "run `factory ingest` first" if table == BARS else "nothing was written yet"
            raise LakeTableMissingError(f"no Delta table at {self.uri(table)}: {hint}")
        return pl.scan_delta(self.uri(table), version=version, storage_options=self.storage_options)

    def _append(self, table: str, df: pl.DataFrame) -> int:
        """Append in one Delta commit and return the version it created."""
        write_deltalake(
            self.uri(table), df.to_arrow(), mode="append", storage_options=self.storage_options
        )
        return self.version(table)

    def _new_and_corrected(self, incoming: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Split incoming bars into unknown ones and ones whose values differ from the lake's.

        Incoming bars equal to the latest known value are neither, and are not stored again.
        """
        known = _latest_knowledge(
            self._scan(BARS).filter(
                pl.col("symbol").is_in(incoming["symbol"].unique().to_list()),
                pl.col("ts").is_between(incoming["ts"].min(), incoming["ts"].max()),
            )
        ).select(BAR_COLUMNS)
        joined = incoming.lazy().join(known, on=_KEY, how="left", suffix="_known").collect()
        is_new = pl.col("close_known").is_null()  # stored bars never have a null close
        differs = pl.any_horizontal(
            pl.col(c).ne_missing(pl.col(f"{c}_known")) for c in NUMERIC_COLUMNS
        )
        return (
            joined.filter(is_new).select(BAR_COLUMNS),
            joined.filter(~is_new & differs).select(BAR_COLUMNS),
        )

    def _commit_time(self) -> datetime:
        """Now (naive UTC), strictly after every knowledge time already in the lake.

        Keeping knowledge times strictly increasing means "latest knowledge wins" is never a
        tie, even with a clock that steps backwards.
        """
        now = datetime.now(UTC).replace(tzinfo=None)
        if self.version(BARS) is None:
            return now
        latest = self._scan(BARS).select(pl.col("knowledge_ts").max()).collect().item()
        return max(now, latest + timedelta(microseconds=1))


def _latest_knowledge(scan: pl.LazyFrame) -> pl.LazyFrame:
    """Keep, for each ``(symbol, ts)``, the row with the latest ``knowledge_ts``."""
    return scan.filter(pl.col("knowledge_ts") == pl.col("knowledge_ts").max().over(_KEY))
