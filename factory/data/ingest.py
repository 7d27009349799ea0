"""Ingest, end to end in plain Python: read every source, settle duplicates, commit once.

Bars go to the bitemporal ``bars`` table; ``kind="sentiment"`` or ``"onchain"`` ingests user
files of those tables instead, by the same rules (see ``side_tables``).

``factory ingest`` calls this directly (no Prefect API to start: a re-ingest of unchanged data
takes a couple of seconds), and the Prefect ``ingest`` flow wraps the same function for runs
triggered from the UI. Sources are read and checked completely before the lake is touched;
the lake then validates what is new and commits it in one atomic Delta commit, under the
FACTORY_HOME writer lock, so a refused batch or a second ingest at the same time never leaves
a half or doubled write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from factory.data.frequency import BarFrequency, align_daily_bars
from factory.data.lake import IngestResult, Lake
from factory.data.replay import hold_back
from factory.data.schema import DataQualityError, QualityFailure
from factory.data.side_tables import SIDE_KINDS, ingest_side_table, read_side_file
from factory.data.sources import ReadOptions, load_bokeh_stocks, load_demo_bars, read_bar_file
from factory.locking import writer_lock
from factory.paths import FactoryPaths

DuplicatePolicy = Literal["reject", "keep-last", "keep-first"]
DUPLICATE_POLICIES: tuple[str, ...] = ("reject", "keep-last", "keep-first")
KINDS: tuple[str, ...] = ("bars", *SIDE_KINDS)
"""What an ingest can write: bars (default), or a sentiment or on-chain table."""
PACKAGED: dict[str, Callable[[], pl.DataFrame]] = {"demo": load_demo_bars,
                                                   "bokeh": load_bokeh_stocks}
"""Real daily bars shipped inside PyPI packages: arch (S&P 500, Nasdaq), bokeh_sampledata."""
_KEY = ["symbol", "ts"]
_SHOWN = 3


@dataclass(frozen=True)
class IngestOptions:
    """How to read and reconcile the sources of one ingest.

    Attributes
    ----------
    read
        How to read user files (symbol, time column, unit and format).
    symbols
        Keep only these symbols (empty: all); naming one that no source holds is an error.
    on_duplicate
        Bars that share ``(symbol, ts)`` once converted to UTC: ``reject`` (default) refuses
        the ingest and shows both rows; ``keep-last``/``keep-first`` keep the last or first in
        the order given (sources in order, then file lines).
    align_daily_bars
        Stamp daily-or-longer bars at 00:00 of their date, so files that stamp the same days
        at different times of day line up instead of doubling the bars.
    calendar
        ``equity``, ``fx`` or ``crypto``: overrides the calendar detected from the bars.
    hold_back
        Keep the last ``hold_back`` bars (timestamps of the universe) out of the lake, for
        the replay feed to release later (``factory replay``); 0 ingests everything.
    kind
        ``bars`` (default), ``sentiment`` or ``onchain``: which table the sources hold. The
        side tables come from files only, and take none of the bar-only options
        (``align_daily_bars``, ``calendar``, ``hold_back``).

    Raises
    ------
    ValueError
        An unknown ``kind``, or a bar-only option given with a side table.
    """

    read: ReadOptions = field(default_factory=ReadOptions)
    symbols: tuple[str, ...] = ()
    on_duplicate: DuplicatePolicy = "reject"
    align_daily_bars: bool = False
    calendar: str | None = None
    hold_back: int = 0
    kind: str = "bars"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.kind != "bars":
            given = [option for option, value in (
                ("--align-daily-bars", self.align_daily_bars), ("--calendar", self.calendar),
                ("--hold-back", self.hold_back)) if value]
            if given:
                raise ValueError(f"{', '.join(given)}: for bars only, not for {self.kind} "
                                 "tables")


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: the lake's result, dropped duplicates, each symbol's frequency."""

    result: IngestResult
    dropped_duplicates: int = 0
    dropped_examples: tuple[str, ...] = ()
    frequencies: dict[str, BarFrequency] = field(default_factory=dict)


def read_source(source: str, options: IngestOptions) -> pl.DataFrame:
    """Read one source: a packaged data set's name or a CSV/Parquet path (of ``options.kind``)."""
    if source in PACKAGED:
        if options.kind != "bars":
            raise ValueError(f"{source!r} is a packaged data set of bars; {options.kind} "
                             "tables come from CSV/Parquet files (--source PATH)")
        if options.read.symbol:
            raise ValueError(f"--symbol names the asset of a file; {source!r} is a packaged "
                             "data set with its own symbols (use --symbols to pick some)")
        return PACKAGED[source]()
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{source}: no such file (sources are CSV/Parquet paths or "
                                f"one of {', '.join(PACKAGED)})")
    if options.kind == "bars":
        return read_bar_file(path, options.read)
    return read_side_file(path, options.kind, options.read)


def prepare_bars(sources: Sequence[str], options: IngestOptions,
                 known: Mapping[str, BarFrequency] | None = None,
                 ) -> tuple[pl.DataFrame, list[str]]:
    """Read every source, keep the wanted symbols, align if asked and settle duplicates.

    Sources hold bars, or the side table ``options.kind`` names; the steps are the same.

    Parameters
    ----------
    sources
        Packaged data set names or CSV/Parquet paths.
    options
        How to read and reconcile them.
    known
        Bar frequencies the lake already holds: alignment trusts them over what a small
        batch shows (a single new bar cannot tell its own frequency).

    Returns
    -------
    bars, dropped
        The bars (or side-table rows) to commit, with provenance columns where the source
        had them, and a description of each duplicate row dropped by the policy.

    Raises
    ------
    DataQualityError
        A source is bad, the symbols filter matches nothing, or duplicates under ``reject``.
    """
    label = ", ".join(sources)
    bars = pl.concat([read_source(s, options) for s in sources], how="diagonal_relaxed")
    if options.symbols:
        held = sorted(bars["symbol"].unique().to_list())
        missing = sorted(set(options.symbols) - set(held))
        if missing:
            raise DataQualityError([QualityFailure(
                label, "symbol", 0,
                f"no bars for symbol(s) {', '.join(missing)}; the sources hold "
                f"{', '.join(held[:20])}{' ...' if len(held) > 20 else ''}")])
        bars = bars.filter(pl.col("symbol").is_in(list(options.symbols)))
    if options.align_daily_bars:
        bars = align_daily_bars(bars, known)
    return settle_duplicates(bars, options.on_duplicate, label)


def settle_duplicates(bars: pl.DataFrame, policy: DuplicatePolicy,
                      label: str) -> tuple[pl.DataFrame, list[str]]:
    """Apply the duplicate policy to bars that share ``(symbol, ts)``.

    Parameters
    ----------
    bars
        Canonical bars in input order, optionally with ``file``/``line`` provenance.
    policy
        ``reject``, ``keep-last`` or ``keep-first``.
    label
        The sources, named in the error.

    Returns
    -------
    bars, dropped
        The kept bars (input order) and one description per dropped row.

    Raises
    ------
    DataQualityError
        Under ``reject``, naming each clashing instant with both original rows.
    """
    if policy not in DUPLICATE_POLICIES:
        raise ValueError(f"on_duplicate must be one of {DUPLICATE_POLICIES}, got {policy!r}")
    ordered = bars.with_row_index("_order")
    clashing = ordered.filter(pl.len().over(_KEY) > 1).sort([*_KEY, "_order"])
    if clashing.is_empty():
        return bars, []
    if policy == "reject":
        groups = clashing.group_by(_KEY, maintain_order=True).agg(pl.all())
        shown = [_describe_clash(row) for row in groups.head(_SHOWN).iter_rows(named=True)]
        more = f"; and {groups.height - _SHOWN} more" if groups.height > _SHOWN else ""
        raise DataQualityError([QualityFailure(
            label, "ts", clashing.height,
            f"{clashing.height} rows share {groups.height} (symbol, time) pair(s) once "
            f"converted to UTC: {'; '.join(shown)}{more}. Pass --on-duplicate keep-last or "
            "keep-first to keep one row of each")])
    keep = "last" if policy == "keep-last" else "first"
    kept = ordered.unique(subset=_KEY, keep=keep, maintain_order=True)
    dropped = ordered.join(kept.select("_order"), on="_order", how="anti").sort("_order")
    return kept.drop("_order"), [_origin(row) for row in dropped.iter_rows(named=True)]


def _describe_clash(group: dict) -> str:
    """``AAPL at 2021-03-14 07:00:00 UTC: a.csv line 12 `...` and b.csv line 3 `...```."""
    rows = [{k: (v[i] if isinstance(v, list) else v) for k, v in group.items()}
            for i in range(len(group["_order"]))]
    return (f"{group['symbol']} at {group['ts']} UTC: "
            + " and ".join(_origin(row, quote=True) for row in rows))


def _origin(row: dict, quote: bool = False) -> str:
    """Where a row came from (file and line), with the line's original text if asked."""
    file, line = row.get("file"), row.get("line")
    if file is None or line is None:
        return f"a bar with close {row['close']}"
    where = f"{file} {'line' if _is_text(file) else 'row'} {line}"
    text = _original_line(file, line) if quote and _is_text(file) else None
    return f"{where} `{text}`" if text else where


def _is_text(file: str) -> bool:
    return Path(file).suffix.lower() in (".csv", ".txt")


def _original_line(file: str, line: int) -> str | None:
    """The text of ``line`` (1-based) in a CSV file, for error messages."""
    try:
        with open(file, errors="replace") as handle:
            for number, text in enumerate(handle, start=1):
                if number == line:
                    return text.rstrip("\r\n")[:120]
    except OSError:
        return None
    return None


def ingest_sources(paths: FactoryPaths, sources: Sequence[str],
                   options: IngestOptions | None = None, *, wait: bool = True,
                   on_wait: Callable[[str], None] | None = None) -> IngestReport:
    """Read, check and commit ``sources`` to the lake of ``paths``, as its only writer.

    Bars go to the ``bars`` table; with ``options.kind`` ``sentiment`` or ``onchain`` the
    rows go to that table (``side_tables.ingest_side_table``), by the same bitemporal rules.

    Parameters
    ----------
    paths
        The FACTORY_HOME to write.
    sources
        Packaged data set names (``demo``, ``bokeh``) or CSV/Parquet paths.
    options
        Reading and reconciling options (defaults: `IngestOptions`).
    wait, on_wait
        Wait for another writer of this home (told through ``on_wait``), or fail at once.

    Returns
    -------
    IngestReport
        The table's version and row counts, dropped duplicates and (bars) each symbol's
        frequency.

    Raises
    ------
    DataQualityError
        Anything wrong with the data; nothing is committed.
    """
    options = options or IngestOptions()
    lake = Lake(paths.lake)
    kind = "" if options.kind == "bars" else f"--kind {options.kind} "
    command = f"factory ingest {kind}" + " ".join(sources)
    with writer_lock(paths, command, wait=wait, on_wait=on_wait):
        if options.kind != "bars":
            rows, dropped = prepare_bars(sources, options)
            result = ingest_side_table(lake, rows, options.kind, ", ".join(sources))
            return IngestReport(result, len(dropped), tuple(dropped[:_SHOWN]))
        bars, dropped = prepare_bars(sources, options, lake.bar_frequencies())
        if options.hold_back:
            bars = hold_back(paths.replay, bars, options.hold_back)
        result = lake.ingest_bars(bars, ", ".join(sources), calendar=options.calendar)
    symbols = sorted(bars["symbol"].unique().to_list())
    return IngestReport(result, len(dropped), tuple(dropped[:_SHOWN]),
                        lake.bar_frequencies(symbols) if result.version is not None else {})
