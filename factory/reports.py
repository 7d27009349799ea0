"""What the read-only commands print: the grid, the leaderboard and data checks.

Plain Python over the core (no Prefect API is started for any of these), so they answer in
about the time it takes to import the libraries.
"""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.table import Table

from factory.config import FactoryConfig
from factory.paths import FactoryPaths


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


def print_grid(console: Console, config: FactoryConfig) -> None:
    """Every config of the profile, the excluded cells with their reasons, and the counts."""
    from factory.grid import expand

    expansion = expand(config)
    table = Table(title=f"profile {config.profile}: {len(expansion.specs)} configs")
    for column in ("#", "id", "arch", "lookback", "feature set", "hyperparameters"):
        table.add_column(column)
    for i, spec in enumerate(expansion.specs, 1):
        hp = ", ".join(f"{k}={v}" for k, v in sorted(spec.hparams.items()))
        table.add_row(str(i), spec.short_id, spec.arch, str(spec.lookback), spec.feature_set, hp)
    console.print(table)
    for cell in expansion.excluded:
        console.print(f"excluded {cell.arch} L={cell.lookback} {cell.feature_set}: {cell.reason}")
    console.print(f"{len(expansion.specs)} configs, {len(expansion.excluded)} cells excluded")


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


def check_files(console: Console, files: list[str], read) -> None:
    """Read and validate files as ``factory ingest`` would, committing nothing.

    Raises
    ------
    DataQualityError
        For the first file with a problem, naming file, column and lines.
    """
    from factory.data.frequency import detect_frequency
    from factory.data.ingest import IngestOptions, prepare_bars
    from factory.data.quality import validate_bars

    for file in files:
        bars, _ = prepare_bars([file], IngestOptions(read=read))
        validate_bars(bars, file)
        console.print(f"{file}: ok, {bars.height} bars")
        for (symbol,), one in bars.group_by("symbol", maintain_order=True):
            if one.height > 1:
                console.print(f"  {symbol}: {detect_frequency(one['ts']).describe()}")


def check_lake(console: Console, paths: FactoryPaths) -> None:
    """Validate the lake's current bars and summarise each symbol.

    Raises
    ------
    LookupError
        When the lake holds no bars yet.
    """
    from factory.data.lake import Lake
    from factory.data.quality import validate_bars

    lake = Lake(paths.lake)
    version = lake.version()
    if version is None:
        raise LookupError(f"the lake at {paths.lake} is empty: nothing to check "
                          "(run `factory ingest` first)")
    bars = lake.read_bars()
    validate_bars(bars, f"lake {paths.lake} v{version}")
    frequencies = lake.bar_frequencies()
    summary = bars.group_by("symbol").agg(
        pl.len().alias("bars"), pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")
    ).sort("symbol")
    console.print(f"lake v{version}: ok")
    for row in summary.iter_rows(named=True):
        console.print(f"  {row['symbol']}: {row['bars']} bars {row['first']} .. {row['last']}, "
                      f"{frequencies[row['symbol']].describe()}")
