"""Sentiment and on-chain tables: read from user files, checked, stored bitemporally.

Both are tables of ``(symbol, ts)`` rows with Float64 metric columns, stored as the Delta
tables ``sentiment`` and ``onchain`` under the lake root with the bars' bitemporal rules:
every row carries ``knowledge_ts`` (its ingest's commit time, strictly increasing per table)
and ``source``; a changed value is appended as a new row and the latest knowledge wins;
re-ingesting identical rows adds nothing; a batch is validated completely (great-expectations,
see ``feature_quality``) before its one atomic commit, so a refused file leaves the table's
version unchanged.

A row's ``ts`` is when its value became known (a score published at 15:00 is stamped 15:00),
read by the same rules as bar times (``timeparse``). Files are read like bar files
(``sources.read_bar_file``): the same time and symbol column aliases, the same ``--symbol``
fallback and the same file/line provenance in errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from factory.data.errors import DataQualityError, QualityFailure
from factory.data.lake import IngestResult, Lake
from factory.data.provenance import PROVENANCE_COLUMNS, Locator

# The bar readers' private steps are reused on purpose: side tables must read exactly as bars.
from factory.data.schema import to_float, to_symbols
from factory.data.sources import ReadOptions, canonical_columns, read_rows, with_symbol
from factory.data.timeparse import TimeUnit, to_utc_naive

__all__ = [
    "SIDE_KINDS",
    "SIDE_SCHEMAS",
    "SideSchema",
    "ingest_side_table",
    "normalise_side_table",
    "read_side_file",
    "read_side_table",
    "side_schema",
]

_KEY = ["symbol", "ts"]
_KNOWLEDGE = "knowledge_ts"


@dataclass(frozen=True)
class SideSchema:
    """The columns of one side table and the inclusive bounds of its metrics.

    Attributes
    ----------
    kind
        The table's name in the lake (``sentiment``, ``onchain``).
    required
        Metric columns every file must have, non-null on every row.
    optional
        Metric columns a file may leave out (stored as null) or leave blank on some rows.
    bounds
        Metric column -> inclusive ``(low, high)`` (``None``: open); values must be finite.
    """

    kind: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    bounds: dict[str, tuple[float | None, float | None]]

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric column, required first."""
        return (*self.required, *self.optional)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a reader gets: ``symbol``, ``ts`` and the metrics."""
        return (*_KEY, *self.metrics)

    def empty(self) -> pl.DataFrame:
        """A frame with the reader's columns and no rows."""
        return pl.DataFrame(schema={"symbol": pl.Utf8, "ts": pl.Datetime("us"),
                                    **dict.fromkeys(self.metrics, pl.Float64)})


SIDE_SCHEMAS: dict[str, SideSchema] = {
    "sentiment": SideSchema("sentiment", ("score",), ("count",),
                            {"score": (-1.0, 1.0), "count": (0.0, None)}),
    "onchain": SideSchema(
        "onchain", ("active_addresses", "transaction_count"),
        ("exchange_inflow", "exchange_outflow"),
        dict.fromkeys(("active_addresses", "transaction_count", "exchange_inflow",
                       "exchange_outflow"), (0.0, None))),
}
"""User-provided tables besides bars: news/social sentiment scores and on-chain metrics."""

SIDE_KINDS: tuple[str, ...] = tuple(SIDE_SCHEMAS)


def side_schema(kind: str) -> SideSchema:
    """The schema of side table ``kind``; a ``ValueError`` names the known kinds."""
    if kind not in SIDE_SCHEMAS:
        raise ValueError(f"unknown table kind {kind!r}; known: {', '.join(SIDE_KINDS)}")
    return SIDE_SCHEMAS[kind]


def normalise_side_table(df: pl.DataFrame, kind: str, label: str, *,
                         time_unit: TimeUnit | None = None,
                         time_format: str | None = None) -> pl.DataFrame:
    """Cast a side table to its canonical columns, in the order given; refuse what is unsafe.

    Parameters
    ----------
    df
        Rows with ``symbol``, ``ts`` and the schema's required metric columns, optionally
        its optional ones and ``PROVENANCE_COLUMNS`` (kept); other columns are dropped.
    kind
        ``sentiment`` or ``onchain``.
    label
        The file or label the rows came from, quoted in errors.
    time_unit, time_format
        How to read ``ts``, as for bars (see ``timeparse.to_utc_naive``).

    Returns
    -------
    pl.DataFrame
        ``SideSchema.columns`` (absent optional metrics as null Float64), then any
        provenance columns.

    Raises
    ------
    DataQualityError
        A required column is missing, or values cannot be converted safely; one failure per
        bad column, naming the rows.
    """
    schema = side_schema(kind)
    required = (*_KEY, *schema.required)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataQualityError(
            [QualityFailure(label, c, df.height, "missing (required column)") for c in missing],
            preamble=f"{label}: missing required column(s) of a {kind} table; required: "
                     f"{', '.join(required)}; optional: {', '.join(schema.optional)}")
    locate = Locator(df, label)
    converters = [lambda: to_symbols(df["symbol"], locate),
                  lambda: to_utc_naive(df["ts"], locate, unit=time_unit, fmt=time_format),
                  *(lambda c=c: to_float(df[c], locate) for c in schema.metrics
                    if c in df.columns)]
    columns, failures = [], []
    for convert in converters:
        try:
            columns.append(convert())
        except DataQualityError as error:
            failures.extend(error.failures)
    if failures:
        raise DataQualityError(failures)
    absent = [pl.lit(None, dtype=pl.Float64).alias(c) for c in schema.metrics
              if c not in df.columns]
    provenance = [df[c].cast(pl.Int64 if c == "line" else pl.Utf8)
                  for c in PROVENANCE_COLUMNS if c in df.columns]
    return pl.DataFrame([*columns, *provenance]).with_columns(absent).select(
        *schema.columns, *(c.name for c in provenance))


def read_side_file(path: Path, kind: str,
                   options: ReadOptions = ReadOptions()) -> pl.DataFrame:  # noqa: B008
    """Read a CSV or Parquet file of a side table, as ``sources.read_bar_file`` reads bars.

    Parameters
    ----------
    path
        A ``.csv``/``.txt`` or ``.parquet``/``.pq`` file.
    kind
        ``sentiment`` or ``onchain``.
    options
        Symbol, time column, time unit and time format, where the file does not say.

    Returns
    -------
    pl.DataFrame
        The canonical columns in file order, plus ``file`` and ``line`` provenance.

    Raises
    ------
    DataQualityError
        The file is empty, a column is missing or values cannot be read safely; the message
        names the file, the column as the file spells it and the lines.
    """
    path = Path(path)
    label = str(path)
    try:
        raw = read_rows(path, label)
    except DataQualityError as error:  # the bar reader speaks of bars
        failures = [replace(f, problem=f.problem.replace("no bars", "no rows"))
                    for f in error.failures]
        raise DataQualityError(failures, error.preamble) from None
    raw, headers = canonical_columns(raw, options.time_column, label)
    raw = with_symbol(raw, options.symbol, path, headers, label)
    try:
        return normalise_side_table(raw, kind, label, time_unit=options.time_unit,
                                    time_format=options.time_format)
    except DataQualityError as error:  # name the columns as the file spells them
        failures = [replace(f, column=headers.get(f.column, f.column)) for f in error.failures]
        raise DataQualityError(failures, error.preamble) from None


def ingest_side_table(lake: Lake, df: pl.DataFrame, kind: str, source: str) -> IngestResult:
    """Validate side-table rows and append what is new or corrected, in one atomic commit.

    Parameters
    ----------
    lake
        The lake whose ``kind`` table is written (created on first use).
    df
        Rows as `normalise_side_table` accepts them; ``file``/``line`` provenance, when
        present, names rows in errors and is never stored.
    kind
        ``sentiment`` or ``onchain``.
    source
        File or label the rows came from; quoted in errors and stored per row.

    Returns
    -------
    IngestResult
        The table's version and row counts; rows equal to the latest known ones are skipped,
        and a batch of nothing new creates no version.

    Raises
    ------
    DataQualityError
        The rows fail a check; nothing is written and the version is unchanged.
    """
    from factory.data.feature_quality import validate_side_table

    schema = side_schema(kind)
    incoming = normalise_side_table(df, kind, source)
    current = lake.version(kind)
    stored = lake.read_table(kind) if current is not None else None
    new, corrected = _new_and_corrected(incoming, stored, schema)
    additions = pl.concat([new, corrected])
    unchanged = incoming.height - additions.height
    if additions.is_empty():
        return IngestResult(current, 0, unchanged, 0)
    validate_side_table(incoming, kind, source)  # all of it: rows named as given
    stamped = additions.select(schema.columns).sort(_KEY).with_columns(
        pl.lit(_commit_time(stored), dtype=pl.Datetime("us")).alias(_KNOWLEDGE),
        pl.lit(source, dtype=pl.Utf8).alias("source"))
    version = lake.append_table(kind, stamped)
    return IngestResult(version, additions.height, unchanged, corrected.height)


def read_side_table(lake: Lake, kind: str, symbols: Sequence[str] | None = None,
                    known_by: datetime | None = None,
                    version: int | None = None) -> pl.DataFrame:
    """Read a side table as it was known: the latest knowledge per ``(symbol, ts)``.

    Parameters
    ----------
    lake
        The lake to read.
    kind
        ``sentiment`` or ``onchain``.
    symbols
        Symbols to read (``None``: all).
    known_by
        Keep only rows known at or before this moment (naive means UTC); default: all.
    version
        Read this Delta version of the table (time travel); default: the latest.

    Returns
    -------
    pl.DataFrame
        ``symbol``, ``ts`` and the schema's metric columns, sorted by ``(symbol, ts)``;
        no rows when nothing was ever ingested.
    """
    schema = side_schema(kind)
    if lake.version(kind) is None:
        return schema.empty()
    table = lake.read_table(kind, version)
    if symbols is not None:
        table = table.filter(pl.col("symbol").is_in(list(symbols)))
    if known_by is not None:
        if known_by.tzinfo is not None:
            known_by = known_by.astimezone(UTC).replace(tzinfo=None)
        table = table.filter(pl.col(_KNOWLEDGE) <= known_by)
    return _latest(table).select(schema.columns).sort(_KEY)


def _latest(table: pl.DataFrame) -> pl.DataFrame:
    """Keep, for each ``(symbol, ts)``, the row with the latest ``knowledge_ts``."""
    return table.filter(pl.col(_KNOWLEDGE) == pl.col(_KNOWLEDGE).max().over(_KEY))


def _new_and_corrected(incoming: pl.DataFrame, stored: pl.DataFrame | None,
                       schema: SideSchema) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split incoming rows into unknown ones and ones whose values differ from the latest."""
    if stored is None:
        return incoming, incoming.clear()
    known = _latest(stored).select(*_KEY, *schema.metrics, pl.lit(True).alias("_known"))
    joined = incoming.join(known, on=_KEY, how="left", suffix="_stored")
    is_new = pl.col("_known").is_null()
    differs = pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_stored"))
                                for c in schema.metrics)
    return (joined.filter(is_new).select(incoming.columns),
            joined.filter(~is_new & differs).select(incoming.columns))


def _commit_time(stored: pl.DataFrame | None) -> datetime:
    """Now (naive UTC), strictly after every knowledge time already in the table."""
    now = datetime.now(UTC).replace(tzinfo=None)
    latest = stored[_KNOWLEDGE].max() if stored is not None and stored.height else None
    return max(now, latest + timedelta(microseconds=1)) if latest is not None else now
