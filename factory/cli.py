"""The ``factory`` command: ingest, run, select, leaderboard, check-data, serve.

Commands import Prefect and MLflow lazily so ``factory --help`` and ``factory run --dry-run``
stay fast; every command works under ``$FACTORY_HOME`` (default: the project root).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from factory.config import ConfigError, load_config
from factory.data.schema import DataQualityError
from factory.paths import configure_environment

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Model Factory: generate, train, rate and promote trading models.")
console = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


@app.command()
def ingest(
    source: list[str] = typer.Option(
        ["demo"], help="'demo' (S&P 500, Nasdaq), 'bokeh' (AAPL, GOOG, IBM, MSFT) or "
        "CSV/Parquet paths; repeatable"),
    symbols: list[str] = typer.Option([], help="keep only these symbols (repeatable)"),
) -> None:
    """Validate bars, then commit them to the bitemporal lake (all or nothing)."""
    configure_environment()
    from flows.ingest import ingest_flow
    from flows.runtime import shared_prefect_api

    try:
        with shared_prefect_api():
            result = ingest_flow(sources=source, symbols=symbols)
    except (DataQualityError, FileNotFoundError) as err:
        _fail(f"{err}\nnothing was committed; the lake keeps its previous version")
    console.print(f"lake version {result['version']}: {result['rows_added']} rows added, "
                  f"{result['rows_corrected']} corrected, {result['rows_unchanged']} unchanged")


@app.command()
def run(
    profile: str = typer.Option("demo", help="conf/profiles/<profile>.yaml"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the configs and their count"),
    workers: int = typer.Option(0, help="worker processes (0: the profile's setting)"),
    force: bool = typer.Option(False, help="retrain specs already trained on this lake version"),
) -> None:
    """Expand the grid, build features, fan out training, log to MLflow."""
    try:
        config = load_config(profile)
    except ConfigError as err:
        _fail(str(err))
    if dry_run:
        _print_grid(config)
        return
    configure_environment()
    from factory.data.universe import MissingSymbolsError
    from flows.factory_flow import run_factory
    from flows.runtime import shared_prefect_api

    try:
        with shared_prefect_api():
            summary = run_factory(profile, workers=workers or None, force=force)
    except MissingSymbolsError as err:
        _fail(str(err))
    console.print(f"profile {profile}, lake version {summary['lake_version']}: "
                  f"{len(summary['finished'])} trained, {len(summary['failed'])} failed, "
                  f"{summary['n_skipped']} already trained on this lake version")
    if summary["failed"]:
        console.print("[yellow]failed configs are FAILED runs in MLflow, with tracebacks")


def _print_grid(config) -> None:
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


@app.command("select")
def select_command(profile: str = typer.Option("demo")) -> None:
    """Rank the latest runs, promote the top K to Production, demote the rest."""
    configure_environment()
    from flows.runtime import shared_prefect_api
    from flows.selection import selection_flow

    with shared_prefect_api():
        result = selection_flow(profile=profile)
    console.print(f"{len(result['chosen'])} models in Production; "
                  f"{len(result['changes'])} registry changes")


@app.command()
def leaderboard(profile: str = typer.Option("demo")) -> None:
    """Print the leaderboard: rank, config, OOS Sharpe, max drawdown, win rate, stage."""
    paths = configure_environment()
    from factory.data.lake import Lake
    from factory.data.strategy_returns import candidate_returns
    from factory.leaderboard import leaderboard_table, rank_candidates
    from factory.tracking import Tracker

    candidates = Tracker(paths).latest_versions()
    if candidates.is_empty():
        _fail("no trained model versions yet: run `factory run` first")
    result = rank_candidates(load_config(profile).selection, candidates,
                             candidate_returns(Lake(paths.lake), candidates))
    board = leaderboard_table(candidates, result)
    table = Table(title="leaderboard (out-of-sample, after costs)")
    shown = [c for c in ("rank", "config", "sharpe", "buy_and_hold_sharpe", "max_drawdown",
                         "win_rate", "stage", "lake_version") if c in board.columns]
    for column in shown:
        table.add_column(column.replace("buy_and_hold_sharpe", "buy&hold sharpe"))
    for row in board.select(shown).iter_rows():
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    Console(width=max(console.width, 130)).print(table)


@app.command("check-data")
def check_data(paths: list[Path] = typer.Argument(None, help="files to check (default: lake)")):
    """Validate files (without committing) or the lake's current bars."""
    factory_paths = configure_environment()
    from factory.data.lake import Lake
    from factory.data.quality import validate_bars
    from factory.data.sources import read_bar_file

    try:
        if paths:
            for path in paths:
                validate_bars(read_bar_file(path), str(path))
                console.print(f"{path}: ok")
            return
        lake = Lake(factory_paths.lake)
        bars = lake.read_bars()
        validate_bars(bars, f"lake {factory_paths.lake} v{lake.version()}")
    except DataQualityError as err:
        _fail(str(err))
    summary = bars.group_by("symbol").agg(
        pl.len().alias("bars"), pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")
    ).sort("symbol")
    console.print(f"lake v{lake.version()}: ok\n{summary}")


@app.command()
def serve(profile: str = typer.Option("demo")) -> None:
    """Register the deployments (factory on demand, selection every 24 h) and serve them."""
    configure_environment()
    from flows.serve import serve_deployments

    serve_deployments(profile)


if __name__ == "__main__":
    app()
