"""A bitemporal Delta Lake of bars, plus plain append-only tables beside it.

Every bar row carries two times: ``ts``, when the bar happened (event time), and
``knowledge_ts``, when the lake learnt it (the ingest commit time). Rows are never updated
in place: a correction is a new row for the same ``(symbol, ts)`` with a later
``knowledge_ts``. Reading "as of" a time keeps, for each bar, the latest row known by then,
so a backtest can see exactly what was known when, and Delta versions give time travel on
top (``read_bars(version=...)``).

Beside the bars, the ``symbols`` table records each symbol's `BarFrequency` (one row per
symbol per change, the latest ``knowledge_ts`` wins), written by the same ingest, so that
metrics annualise from the stored frequency and calendar, never by counting bars (rule 10).

Paths are kept as strings so the same code works on local directories and on ``s3://``
URIs (pass credentials through ``storage_options``).

Tiers: old bars can move to a cold ``bars`` table under ``cold_root`` (``factory.data.cold``).
Reads fall through: warm version ``v`` reads the warm rows at ``v`` plus the cold rows
committed by the time ``v`` was, exact duplicates dropped; migration appends to the cold
table before it deletes from the warm one, so no read ever changes. The lake version stays
the warm ``bars`` table's Delta version.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from deltalake import DeltaTable, write_deltalake

from factory.data.cold_record import resolve_cold_root
from factory.data.frequency import BarFrequency, check_bar_series, detect_frequency
from factory.data.provenance import PROVENANCE_COLUMNS
from factory.data.quality import validate_bars
from factory.data.schema import BAR_COLUMNS, NUMERIC_COLUMNS, DataQualityError, normalise_bars
from factory.data.versions import data_version, readable_version
from factory.paths import factory_paths

BARS = "bars"
SYMBOLS = "symbols"
LAKE_COLUMNS: tuple[str, ...] = (*BAR_COLUMNS, "knowledge_ts", "source")
SYMBOL_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.Utf8(), "bar_seconds": pl.Int64(), "label": pl.Utf8(), "calendar": pl.Utf8(),
    "periods_per_year": pl.Float64(), "time_of_day": pl.Utf8(), "knowledge_ts": pl.Datetime("us"),
}
"""Columns of the ``symbols`` table: a `BarFrequency` per symbol and when it was learnt."""
_KEY = ["symbol", "ts"]
COLD_URI_ENV = "FACTORY_COLD_URI"
"""The cold tier of FACTORY_HOME's lake: a local folder or object-store URI (``s3://...``)."""


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
    cold_root
        Root of the cold tier (its ``bars`` table), ``""`` for none; default:
        ``$FACTORY_COLD_URI`` for FACTORY_HOME's own lake, none for any other. Once bars
        moved there, the root recorded in the lake wins (`factory.data.cold_record`).
    cold_storage_options
        The cold tier's object-store options (default: ``AWS_*`` etc. from the environment).
    """

    def __init__(self, root: Path | str, storage_options: dict[str, str] | None = None, *,
                 cold_root: Path | str | None = None,
                 cold_storage_options: dict[str, str] | None = None) -> None:
        self.root = str(root).rstrip("/")
        self.storage_options = storage_options
        home_lake = "://" not in self.root and Path(root).resolve() == factory_paths().lake
        if cold_root is None and home_lake:
            cold_root = os.environ.get(COLD_URI_ENV, "")
        configured = str(cold_root or "").rstrip("/") or None
        self.cold_root = resolve_cold_root(self.root, configured)
        self.cold_storage_options = cold_storage_options

    def uri(self, table: str) -> str:
        """Return the location of ``table`` under the lake root."""
        return f"{self.root}/{table}"

    def cold_uri(self) -> str | None:
        """The cold tier's ``bars`` table, or ``None`` when no cold tier is configured."""
        return f"{self.cold_root}/{BARS}" if self.cold_root else None

    def version(self, table: str = BARS) -> int | None:
        """Return the table's latest Delta version, or ``None`` if it does not exist yet."""
        if not DeltaTable.is_deltatable(self.uri(table), self.storage_options):
            return None
        return DeltaTable(self.uri(table), storage_options=self.storage_options).version()

    def symbols(self) -> list[str]:
        """Return the sorted symbols in the bars table (empty if there is none yet)."""
        if self.version(BARS) is None:
            return []
        frame = self.scan_bars().select(pl.col("symbol").unique()).collect()
        return sorted(frame["symbol"].to_list())

    def ingest_bars(
        self,
        df: pl.DataFrame,
        source: str,
        *,
        calendar: str | None = None,
    ) -> IngestResult:
        """Check bars and append what is new or corrected, in one atomic commit.

        Steps: normalise; refuse, per
        symbol, bars that cannot be one series with the lake's (`check_bar_series`); split
        new and corrected rows from ones the lake already knows; validate only the rows to
        commit with great-expectations (unchanged rows were validated when stored, so a
        re-ingest of unchanged data never builds the GX context); append them; then record
        the frequency of each symbol whose frequency is new or changed.

        Parameters
        ----------
        df
            Bars with the canonical columns (any column types ``normalise_bars`` accepts),
            optionally with ``file``/``line`` provenance, used to name rows in errors and
            never stored.
        source
            File or label the bars came from; quoted in errors and stored per row.
        calendar
            ``"equity"``, ``"fx"`` or ``"crypto"``: overrides the detected calendar and is
            stored (default: detected on a symbol's first ingest, then kept).

        Returns
        -------
        IngestResult
            The resulting version and row counts. Ingesting data the lake already knows adds
            nothing and creates no new version.

        Raises
        ------
        DataQualityError
            If the bars fail a check; nothing is written and the versions are unchanged.
        ValueError
            If ``calendar`` is not a known calendar.
        """
        incoming = _normalise(df, source)
        symbols = incoming["symbol"].drop_nulls().unique().to_list()
        current_version = self.version(BARS)
        stored_ts = self._stored_timestamps(symbols) if current_version is not None else {}
        recorded = self._recorded_frequencies(symbols)
        known = {**_detect_all(stored_ts, exclude=recorded), **recorded}
        after = check_bar_series(incoming, source, stored_ts, known, calendar)
        changed = {s: f for s, f in after.items() if recorded.get(s) != f}
        as_given, incoming = incoming, incoming.sort(_KEY, maintain_order=True)
        if current_version is None:
            new, corrected = incoming, incoming.clear()
        else:
            new, corrected = self._new_and_corrected(incoming)
        unchanged = incoming.height - new.height - corrected.height
        additions = pl.concat([new, corrected])
        if not additions.is_empty():
            _validate(additions, as_given, source)
        if additions.is_empty() and not changed:
            return IngestResult(current_version, 0, unchanged, 0)
        knowledge_ts = self._commit_time()
        version = current_version
        if not additions.is_empty():
            stamped = additions.select(BAR_COLUMNS).sort(_KEY).with_columns(
                knowledge_ts=pl.lit(knowledge_ts, dtype=pl.Datetime("us")),
                source=pl.lit(source, dtype=pl.Utf8),
            )
            version = self._append(BARS, stamped)
        if changed:
            self._append(SYMBOLS, _frequency_rows(changed, knowledge_ts))
        return IngestResult(version, additions.height, unchanged, corrected.height)

    def bar_frequencies(
        self, symbols: Sequence[str] | None = None, version: int | None = None
    ) -> dict[str, BarFrequency]:
        """Each symbol's stored bar frequency and calendar.

        Parameters
        ----------
        symbols
            Symbols to look up (default: every symbol in the bars table).
        version
            A bars-table version: the frequencies known when it was written (default, or the
            latest version: the latest frequencies).

        Returns
        -------
        dict of str to BarFrequency
            The latest recorded row per symbol; a symbol without one (a lake written before
            the ``symbols`` table existed) is detected from its stored bars. Symbols absent
            from the lake, or with a single bar, are left out; an empty lake gives ``{}``.
        """
        latest = self.version(BARS)
        if latest is None:
            return {}
        if symbols is None:
            held = self.scan_bars(version).select(pl.col("symbol").unique()).collect()
            symbols = held["symbol"].to_list()
        known_by = None
        if version is not None and version != latest:
            known_by = self.known_through(version)
        recorded = self._recorded_frequencies(list(symbols), known_by)
        missing = [s for s in symbols if s not in recorded]
        found = {**_detect_all(self._stored_timestamps(missing, version)), **recorded}
        return {s: found[s] for s in sorted(symbols) if s in found}

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
        scan = self.scan_bars(version)
        if symbols is not None:
            scan = scan.filter(pl.col("symbol").is_in(list(symbols)))
        if as_of is not None:
            scan = scan.filter(pl.col("knowledge_ts") <= _utc_naive(as_of))
        return latest_knowledge(scan).select(BAR_COLUMNS).sort(_KEY).collect()

    def scan_bars(self, version: int | None = None) -> pl.LazyFrame:
        """Every stored row (``LAKE_COLUMNS``, all knowledge) of a bars ``version`` (default:
        the latest), across tiers; raises `LakeTableMissingError` before the first ingest."""
        tiers = self._tiers(version)
        return tiers[0] if len(tiers) == 1 else pl.concat(tiers).unique()

    def known_through(self, version: int | None = None) -> datetime | None:
        """The newest ``knowledge_ts`` of a bars version, across tiers (``None``: no rows)."""
        newest = [t.select(pl.col("knowledge_ts").max()).collect().item()
                  for t in self._tiers(version)]
        return max(filter(None, newest), default=None)

    def data_version(self) -> int | None:
        """The latest bars version that changed the rows (maintenance and migration to the
        cold tier do not): what a run records. ``None`` before the first ingest."""
        if self.version(BARS) is None:
            return None
        return data_version(self.uri(BARS), self.storage_options)

    def _tiers(self, version: int | None) -> list[pl.LazyFrame]:
        """The warm scan of a version, and the cold one that goes with it if there is one.

        A version is read at the newest version with the same rows (`readable_version`), so
        a version that maintenance rewrote stays readable after its files are vacuumed.
        """
        if version is not None and self.version(BARS) is not None:
            version = readable_version(self.uri(BARS), self.storage_options, version)
        warm = self._scan(BARS, version)
        cold_version = self._cold_version(version)
        if cold_version is None:
            return [warm]
        cold = pl.scan_delta(self.cold_uri(), version=cold_version,
                             storage_options=self.cold_storage_options)
        return [warm, cold.select(warm.collect_schema().names())]

    def _cold_version(self, version: int | None) -> int | None:
        """The cold version read with warm ``version``: the latest with the latest, else the
        last cold commit no later than the warm one (``None``: no cold rows)."""
        uri = self.cold_uri()
        if uri is None or not DeltaTable.is_deltatable(uri, self.cold_storage_options):
            return None
        cold = DeltaTable(uri, storage_options=self.cold_storage_options)
        if version is None:
            return cold.version()
        # Not DeltaTable(version=...).history(): deltalake 1.6 numbers that history wrongly.
        warm = DeltaTable(self.uri(BARS), storage_options=self.storage_options)
        commits = warm.history(warm.version() - version + 1)
        written = next(c["timestamp"] for c in commits if c["version"] == version)
        earlier = [c["version"] for c in cold.history() if c["timestamp"] <= written]
        return max(earlier, default=None)

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

    def _stored_timestamps(
        self, symbols: Sequence[str], version: int | None = None
    ) -> dict[str, np.ndarray]:
        """Per symbol, the distinct stored bar times as sorted int64 microseconds."""
        if not symbols:
            return {}
        frame = (
            self.scan_bars(version)
            .filter(pl.col("symbol").is_in(list(symbols)))
            .select("symbol", pl.col("ts").cast(pl.Datetime("us")).to_physical())
            .unique()
            .sort(_KEY)
            .collect()
        )
        parts = frame.partition_by("symbol", as_dict=True, maintain_order=True)
        return {key[0]: part["ts"].to_numpy() for key, part in parts.items()}

    def _recorded_frequencies(
        self, symbols: Sequence[str], known_by: datetime | None = None
    ) -> dict[str, BarFrequency]:
        """The latest ``symbols``-table row of each symbol (known by ``known_by``, if given)."""
        if self.version(SYMBOLS) is None or not symbols:
            return {}
        scan = self._scan(SYMBOLS).filter(pl.col("symbol").is_in(list(symbols)))
        if known_by is not None:
            scan = scan.filter(pl.col("knowledge_ts") <= known_by)
        latest = scan.filter(pl.col("knowledge_ts") == pl.col("knowledge_ts").max().over("symbol"))
        names = [f.name for f in fields(BarFrequency)]
        return {
            row["symbol"]: BarFrequency(**{n: row[n] for n in names})
            for row in latest.collect().iter_rows(named=True)
        }

    def _new_and_corrected(self, incoming: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Split incoming bars into unknown ones and ones whose values differ from the lake's.

        Incoming bars equal to the latest known value are neither, and are not stored again.
        Provenance columns are kept (for error messages).
        """
        known = latest_knowledge(
            self.scan_bars().filter(
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
            joined.filter(is_new).select(incoming.columns),
            joined.filter(~is_new & differs).select(incoming.columns),
        )

    def _commit_time(self) -> datetime:
        """Now (naive UTC), strictly after every knowledge time already in the lake.

        Keeping knowledge times strictly increasing (across the bars and symbols tables)
        means "latest knowledge wins" is never a tie, even with a clock that steps backwards.
        """
        known = [self.known_through() if self.version(BARS) is not None else None]
        if self.version(SYMBOLS) is not None:
            known.append(self._scan(SYMBOLS).select(pl.col("knowledge_ts").max()).collect().item())
        later = [moment + timedelta(microseconds=1) for moment in known if moment is not None]
        return max([datetime.now(UTC).replace(tzinfo=None), *later])


def latest_knowledge(scan: pl.LazyFrame) -> pl.LazyFrame:
    """Keep, for each ``(symbol, ts)``, the row with the latest ``knowledge_ts``."""
    return scan.filter(pl.col("knowledge_ts") == pl.col("knowledge_ts").max().over(_KEY))


def _normalise(df: pl.DataFrame, source: str) -> pl.DataFrame:
    """Canonical bars in the order given, with the ``file``/``line`` provenance of ``df``."""
    bars = normalise_bars(df, source, sort=False)
    kept = [c for c in PROVENANCE_COLUMNS if c in df.columns and c not in bars.columns]
    if kept and bars.height == df.height:
        bars = bars.with_columns(df.select(kept))
    return bars


def _validate(additions: pl.DataFrame, as_given: pl.DataFrame, source: str) -> None:
    """Validate the rows to commit; name rows as given when they carry no provenance."""
    try:
        validate_bars(additions, source)
    except DataQualityError:
        if "line" in additions.columns:
            raise
        validate_bars(as_given, source)  # the same failures, numbered in the frame as given
        raise


def _detect_all(
    stored_ts: Mapping[str, np.ndarray], exclude: Mapping[str, object] | None = None
) -> dict[str, BarFrequency]:
    """Detect the frequency of each symbol's stored bars (two or more), skipping ``exclude``."""
    return {
        symbol: detect_frequency(us.astype("datetime64[us]"))
        for symbol, us in stored_ts.items()
        if us.size >= 2 and symbol not in (exclude or {})
    }


def _frequency_rows(frequencies: Mapping[str, BarFrequency], known: datetime) -> pl.DataFrame:
    """One ``symbols``-table row per symbol."""
    rows = [{"symbol": s, **asdict(f), "knowledge_ts": known} for s, f in frequencies.items()]
    return pl.DataFrame(rows, schema=SYMBOL_SCHEMA)
