"""What the read-only commands print: the grid, the leaderboard and data checks.

Plain Python over the core (no Prefect API is started for any of these), so they answer in
about the time it takes to import the libraries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import polars as pl
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factory.config import FactoryConfig
from factory.paths import FactoryPaths

if TYPE_CHECKING:
    from factory.data.data_docs import QualityReport


def print_models(console: Console) -> None:
    """Every architecture of the zoo: family, library, capabilities and what it is."""
    from model_zoo.registry import ARCHITECTURES

    table = Table(title=f"{len(ARCHITECTURES)} architectures")
    for column in ("name", "family", "library", "input", "capabilities", "what it is"):
        table.add_column(column, no_wrap=column in ("name", "family"))
    for arch in ARCHITECTURES.values():
        caps = arch.capabilities
        shape = ("univariate series" if caps.univariate
                 else "sequence window" if caps.sequence else "flattened window")
        flags = [name for name, on in (
            ("panel of assets", caps.panel), ("GPU-able", caps.gpu),
            ("pooled across assets", caps.multi_asset and not caps.panel),
            ("whole history", not caps.uses_lookback)) if on]
        flags.append(f"min {caps.min_history} windows")
        table.add_row(arch.name, caps.family, arch.library, shape, ", ".join(flags),
                      arch.summary)
    Console(width=max(console.width, 160)).print(table)


def print_features(console: Console, config: FactoryConfig) -> None:
    """Every feature set: the inputs it needs, what it computes, its parameters here."""
    from feature_sets import FEATURE_SETS, INPUT_KINDS

    table = Table(title=f"{len(FEATURE_SETS)} feature sets (profile {config.profile})")
    for column in ("name", "needs", "what it computes", "parameters", "normaliser", "in grid"):
        table.add_column(column, no_wrap=column == "name")
    for name, registered in FEATURE_SETS.items():
        configured = config.features.get(name)
        params = ", ".join(f"{k}={v}" for k, v in (configured.params if configured else {}
                                                   ).items())
        table.add_row(name, ", ".join(registered.needs), registered.summary, params or "-",
                      configured.normaliser if configured else "-",
                      "yes" if name in config.grid.feature_sets else "no")
    Console(width=max(console.width, 160)).print(table)
    for kind, provider in INPUT_KINDS.items():
        console.print(f"  {kind}: {provider}")


def print_leaderboard(console: Console, paths: FactoryPaths, config: FactoryConfig) -> None:
    """Print the last selection's leaderboard, or a preview when none has run yet.

    The last selection is read from the lake's ``selection_audit`` table, so this shows what
    the registry holds and why. Each model appears under its registered name, in full (never
    wrapped or cut), so it can be copied into ``models:/<name>@production``.

    Raises
    ------
    LookupError
        When nothing has been trained in this home yet.
    """
    from factory.leaderboard import HEADERS, SHOWN, format_value
    from factory.selection_run import decide, latest_audit

    if not paths.has_tracking_store():
        raise LookupError(f"no trained model versions in {paths.home} yet: run `factory run`")
    board = latest_audit(paths)
    if board is None:
        decision = decide(paths, config.profile, config.selection)
        board, headline = decision.board, decision.result.headline
        title = "leaderboard PREVIEW: no selection has run yet (`factory select` applies it)"
    else:
        headline = board["headline"][0]
        title = f"leaderboard of the selection at {board['decided_at'][0]}"
    # N is in the headline; without it a failed gate fits on one line of the table.
    board = board.with_columns(pl.col("gates_failed").str.replace_all(r" \(N=\d+ trials\)", ""))
    table = Table(title=f"{title}\nout-of-sample, after costs")
    shown = [c for c in SHOWN if c in board.columns]
    for column in shown:
        header = HEADERS.get(column, column)
        if column == "gates_failed":  # the one column that wraps, so no figure is cut
            table.add_column(header, max_width=48)
        else:
            table.add_column(header, no_wrap=True, min_width=min(len(header), 15))
    for row in board.select(shown).iter_rows():
        table.add_row(*[format_value(v) for v in row])
    wide = Console(width=max(console.width, 200))
    wide.print(table)
    wide.print(headline, soft_wrap=True)


def check_files(console: Console, files: list[str], read, kind: str = "bars") -> None:
    """Read and validate files as ``factory ingest`` would, committing nothing.

    Parameters
    ----------
    console
        Where to report.
    files
        CSV/Parquet paths.
    read
        How to read them (``sources.ReadOptions``).
    kind
        What they hold: ``bars``, ``sentiment`` or ``onchain``.

    Raises
    ------
    DataQualityError
        For the first file with a problem, naming file, column and lines.
    """
    from factory.data.feature_quality import validate_side_table
    from factory.data.frequency import detect_frequency
    from factory.data.ingest import IngestOptions, prepare_bars
    from factory.data.quality import validate_bars

    for file in files:
        rows, _ = prepare_bars([file], IngestOptions(read=read, kind=kind))
        if kind != "bars":
            validate_side_table(rows, kind, file)
            console.print(f"{file}: ok, {rows.height} {kind} rows")
            continue
        validate_bars(rows, file)
        console.print(f"{file}: ok, {rows.height} bars")
        for (symbol,), one in rows.group_by("symbol", maintain_order=True):
            if one.height > 1:
                console.print(f"  {symbol}: {detect_frequency(one['ts']).describe()}")


_MARKS = {"passed": "[green]ok[/]", "failed": "[bold red]FAILED[/]",
          "skipped": "[yellow]skipped[/]"}


def check_data_quality(console: Console, paths: FactoryPaths, *, lake: bool = True,
                       packaged: bool = True,
                       params: Mapping[str, Mapping[str, float]] | None = None,
                       ) -> QualityReport:
    """Run every data-quality suite, print one line per suite and where Data Docs are.

    Parameters
    ----------
    console
        Where to report.
    paths
        The FACTORY_HOME to check; Data Docs go under its ``data/quality``.
    lake, packaged, params
        What to check and the feature sets' parameters (see
        ``data_docs.run_quality_checks``).

    Returns
    -------
    QualityReport
        Every suite's result; the caller fails the command when one failed.

    Raises
    ------
    LookupError
        When the lake is to be checked but holds no bars.
    """
    from factory.data.data_docs import run_quality_checks

    report = run_quality_checks(paths, lake=lake, packaged=packaged, params=params)
    if lake:
        _lake_summary(console, paths)
    for result in report.results:
        first, *rest = result.detail.splitlines() or [""]
        console.print(f"{_MARKS[result.status]} {result.name}: {escape(first)}")
        for line in rest:
            console.print(f"    {line}", markup=False)
    counts = {s: sum(r.status == s for r in report.results) for s in _MARKS}
    console.print(f"{counts['passed']} suites passed, {counts['failed']} failed, "
                  f"{counts['skipped']} skipped; Data Docs: {report.index}")
    return report


def _lake_summary(console: Console, paths: FactoryPaths) -> None:
    """Each symbol of the lake: bars, first and last time, stored frequency."""
    from factory.data.lake import Lake

    lake = Lake(paths.lake)
    frequencies = lake.bar_frequencies()
    summary = lake.read_bars().group_by("symbol").agg(
        pl.len().alias("bars"), pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")
    ).sort("symbol")
    console.print(f"lake v{lake.version()}:")
    for row in summary.iter_rows(named=True):
        frequency = frequencies.get(row["symbol"])
        console.print(f"  {row['symbol']}: {row['bars']} bars {row['first']} .. {row['last']}"
                      + (f", {frequency.describe()}" if frequency else ""))
