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

LEADERBOARD_COLUMNS = ("rank", "model_name", "sharpe", "buy_and_hold_sharpe", "max_drawdown",
                       "win_rate", "stage", "lake_version")
"""``model_name`` is the registered model's name, what ``models:/<name>@production`` takes."""
HEADERS = {"model_name": "model", "buy_and_hold_sharpe": "buy&hold sharpe"}


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
    """Rank the registry's latest versions and print them (out-of-sample, after costs).

    Each model appears under its registered name, in full (never wrapped or cut), so it can
    be copied into ``mlflow.pyfunc.load_model("models:/<name>@production")``.

    Raises
    ------
    LookupError
        When nothing has been trained in this home yet.
    """
    from factory.data.lake import Lake
    from factory.data.strategy_returns import candidate_returns
    from factory.leaderboard import leaderboard_table, rank_candidates
    from factory.tracking import Tracker

    if not paths.has_tracking_store():
        raise LookupError(f"no trained model versions in {paths.home} yet: run `factory run`")
    candidates = Tracker(paths).latest_versions()
    if candidates.is_empty():
        raise LookupError(f"no trained model versions in {paths.home} yet: run `factory run`")
    result = rank_candidates(config.selection, candidates,
                             candidate_returns(Lake(paths.lake), candidates))
    board = leaderboard_table(candidates, result)
    table = Table(title="leaderboard (out-of-sample, after costs)")
    shown = [c for c in LEADERBOARD_COLUMNS if c in board.columns]
    for column in shown:
        table.add_column(HEADERS.get(column, column), no_wrap=column == "model_name")
    for row in board.select(shown).iter_rows():
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    Console(width=max(console.width, 130)).print(table)


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
