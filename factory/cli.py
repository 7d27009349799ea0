"""The ``factory`` command: ingest, run, select, snapshot, replay, models, features,
leaderboard, check-data, lake, serve, backup, relocate, backtest.

Commands import Prefect and MLflow lazily so ``factory --help``, ``factory run --dry-run`` and
``factory ingest`` stay fast; only ``run``, ``select``, ``snapshot`` and ``serve`` need a Prefect
API. Every command works under ``$FACTORY_HOME`` (default: the project root). Every error ends
the command with exit code 1 and one short message; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from factory.config import ConfigError, load_config
from factory.paths import configure_environment

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Model Factory: generate, train, rate and promote trading models.")
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"verbose": False}


@app.callback()
def main(ctx: typer.Context,
         verbose: bool = typer.Option(False, "--verbose", "-v",
                                      help="show tracebacks and Prefect's logs")) -> None:
    """Model Factory: generate, train, rate and promote trading models."""
    _state.update(verbose=verbose, committing=False)
    # Prefect logs a failed flow with its whole traceback; the CLI says it in one message.
    # A serving process keeps Prefect's logs on the terminal: they are what it has to say.
    # Prefect's loggers stay at INFO whatever the terminal shows: a flow run's log records
    # reach the API (the UI's Logs tab) only through them; quiet silences the console only.
    quiet = not verbose and ctx.invoked_subcommand != "serve"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


def notice(message: str) -> None:
    """A one-line notice on stderr (waiting for a lock, a slow server)."""
    err_console.print(f"[yellow]{message}[/]", soft_wrap=True)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code=1)


def clean_errors(command: Callable) -> Callable:
    """Turn any exception into one short message and exit code 1 (traceback with --verbose)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(code=130) from None
        except Exception as err:  # noqa: BLE001 - the CLI's single place to report errors
            if _state["verbose"]:
                err_console.print(traceback.format_exc(), markup=False)
            _fail(_message(err))

    return wrapper


def _message(err: Exception) -> str:
    """What to print for an error: our own errors speak for themselves."""
    from factory.data.schema import DataQualityError

    if isinstance(err, DataQualityError) and _state.get("committing"):
        return f"{err}\nnothing was committed; the lake keeps its previous version"
    known = (ConfigError, FileNotFoundError, LookupError, ValueError, RuntimeError, OSError)
    if isinstance(err, known) and str(err):
        return str(err)
    return f"{type(err).__name__}: {err} (run with --verbose for the traceback)"


_SOURCE_HELP = ("'demo' (S&P 500, Nasdaq), 'bokeh' (AAPL, GOOG, IBM, MSFT) or a CSV/Parquet "
                "path; repeatable")


@app.command()
@clean_errors
def ingest(
    source: list[str] = typer.Option(["demo", "bokeh"], help=_SOURCE_HELP),
    symbols: list[str] = typer.Option([], help="keep only these symbols (repeatable)"),
    symbol: str = typer.Option(None, help="the symbol of a single-asset file "
                               "(default: its symbol column, else the file name)"),
    time_column: str = typer.Option(None, help="the time column, if not ts/timestamp/date/..."),
    time_unit: str = typer.Option(None, help="unit of integer times: s, ms, us, ns, days "
                                  "(since 1970) or excel (serial days)"),
    time_format: str = typer.Option(None, help="strptime format of text times, e.g. %d/%m/%Y"),
    on_duplicate: str = typer.Option("reject", help="bars sharing (symbol, time) once in UTC: "
                                     "reject, keep-last or keep-first"),
    align_daily_bars: bool = typer.Option(False, "--align-daily-bars",
                                          help="stamp daily bars at 00:00 of their date"),
    calendar: str = typer.Option(None, help="equity, fx or crypto (default: detected)"),
    hold_back: int = typer.Option(0, help="keep the last N bars out of the lake for "
                                  "`factory replay` to release later"),
    wait: bool = typer.Option(True, help="wait for another writer of this home to finish"),
    kind: str = typer.Option("bars", help="what the sources hold: bars, sentiment (symbol, "
                             "ts, score in [-1, 1], optional count) or onchain (symbol, ts, "
                             "active_addresses, transaction_count, optional exchange_inflow, "
                             "exchange_outflow)"),
) -> None:
    """Validate bars (or a sentiment or on-chain table), then commit them to the bitemporal
    lake (all or nothing)."""
    from factory.data.ingest import IngestOptions, ingest_sources
    from factory.data.sources import ReadOptions

    paths = configure_environment()
    _state["committing"] = True
    options = IngestOptions(
        read=ReadOptions(symbol=symbol, time_column=time_column, time_unit=time_unit,
                         time_format=time_format),
        symbols=tuple(symbols), on_duplicate=on_duplicate, align_daily_bars=align_daily_bars,
        calendar=calendar, hold_back=hold_back, kind=kind)
    report = ingest_sources(paths, source, options, wait=wait, on_wait=notice)
    result = report.result
    table = "lake" if kind == "bars" else f"{kind} table"
    console.print(f"{table} version {result.version}: {result.rows_added} rows added, "
                  f"{result.rows_corrected} corrected, {result.rows_unchanged} unchanged")
    if report.dropped_duplicates:
        console.print(f"dropped {report.dropped_duplicates} duplicate rows ({on_duplicate}), "
                      f"e.g. {'; '.join(report.dropped_examples)}")
    for name, frequency in sorted(report.frequencies.items()):
        console.print(f"  {name}: {frequency.describe()}")


@app.command()
@clean_errors
def run(
    profile: str = typer.Option("demo", help="conf/profiles/<profile>.yaml"),
    source: str = typer.Option(None, help="'demo' or 'lake' (whatever `factory ingest` "
                               "committed); default: the profile's"),
    symbols: list[str] = typer.Option([], help="train on these symbols only (repeatable)"),
    start: str = typer.Option(None, help="first day of history to use: YYYY-MM-DD, or "
                              "'common' (the latest first bar of the universe); default: the "
                              "profile's data.start"),
    end: str = typer.Option(None, help="last day of history to use: YYYY-MM-DD, or 'common' "
                            "(the earliest last bar: every symbol reaches the out-of-sample "
                            "period); default: the profile's data.end"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the configs and their count"),
    workers: int = typer.Option(0, help="worker processes (0: the profile's setting)"),
    search: str = typer.Option("grid", "--search", help="grid: every config of the profile; "
                               "optuna: a TPE search per architecture (conf/search.yaml)"),
    trials: int = typer.Option(None, "--trials", min=1, help="with --search optuna: configs "
                               "trained per architecture (default: the profile's "
                               "search.n_trials)"),
    dask: str = typer.Option(None, "--dask", help="train on the Dask cluster whose scheduler "
                             "is at this address (tcp://HOST:PORT); default: the profile's "
                             "execution.dask_address, else local worker processes"),
    force: bool = typer.Option(False, help="retrain specs already trained on this lake version"),
    lake_version: int = typer.Option(None, help="read this version of the bars table (time "
                                     "travel: with --force, reproduces an earlier run)"),
    side_version: list[str] = typer.Option([], help="TABLE=N: read side table sentiment or "
                                           "onchain at version N (repeatable)"),
    wait: bool = typer.Option(True, help="wait for another writer of this home to finish"),
) -> None:
    """Expand the grid (or search it with Optuna), build features, fan out training, log to
    MLflow."""
    data = {k: v for k, v in (("source", source), ("symbols", tuple(symbols)), ("start", start),
                              ("end", end)) if v}
    config = load_config(profile, data=data)
    paths = configure_environment()
    if search not in ("grid", "optuna"):
        raise ValueError(f"--search {search}: expected grid or optuna")
    if search == "optuna" and (force or dask):
        raise ValueError("--force and --dask apply to the grid; --search optuna resumes its "
                         "studies and trains on local worker processes")
    if search == "grid" and trials is not None:
        raise ValueError("--trials applies to --search optuna")
    if search == "optuna":
        _run_search(config, paths, data, dry_run, workers, trials, lake_version, side_version,
                    wait)
        return
    if dry_run:
        from factory.data.lake import Lake
        from factory.data.universe import describe_universe
        from factory.grid_report import print_grid

        universe = _lake_universe(config, paths)
        print_grid(console, config, universe)
        if universe is not None:  # what the configs would train on, and until when
            for line in describe_universe(config, Lake(paths.lake)).lines():
                console.print(line, soft_wrap=True)
        return
    if dask or config.execution.dask_address:  # before the lock and Prefect: fail at once
        from flows.executors import check_dask_scheduler

        for line in check_dask_scheduler(dask or config.execution.dask_address).notices():
            notice(line)
    from factory.data.lake import Lake
    from factory.data.universe import describe_universe
    from factory.locking import writer_lock
    from flows.factory_flow import run_factory
    from flows.runtime import shared_prefect_api

    with writer_lock(paths, f"factory run --profile {profile}", wait=wait, on_wait=notice):
        universe = describe_universe(config, Lake(paths.lake))
        for line in universe.lines():
            console.print(line, soft_wrap=True)
        with shared_prefect_api(on_slow_start=notice):
            summary = run_factory(profile, workers=workers or None, force=force, data=data,
                                  lake_version=lake_version,
                                  side_versions=_table_versions(side_version),
                                  dask_address=dask)
    console.print(f"profile {profile}, lake version {summary['lake_version']}: "
                  f"{len(summary['finished'])} trained, {len(summary['failed'])} failed, "
                  f"{summary['n_skipped']} already trained on this lake version")
    if summary["failed"]:
        console.print("[yellow]failed configs are FAILED runs in MLflow, with tracebacks")


def _run_search(config, paths, data, dry_run: bool, workers: int, trials: int | None,
                lake_version: int | None, side_version: list[str], wait: bool) -> None:
    """``factory run --search optuna``: print the studies' spaces, or run the search flow."""
    from factory.search import describe_search, search_summary_lines, storage_url

    storage = storage_url(config.search, paths.mlflow)
    if dry_run:
        symbols, missing = _lake_universe(config, paths) or ((), None)
        for line in describe_search(config, symbols, missing, storage, trials):
            console.print(line, soft_wrap=True)
        return
    from factory.data.lake import Lake
    from factory.data.universe import describe_universe
    from factory.locking import writer_lock
    from flows.runtime import shared_prefect_api
    from flows.search_flow import run_search

    profile = config.profile
    with writer_lock(paths, f"factory run --search optuna --profile {profile}", wait=wait,
                     on_wait=notice):
        for line in describe_universe(config, Lake(paths.lake)).lines():
            console.print(line, soft_wrap=True)
        with shared_prefect_api(on_slow_start=notice):
            summary = run_search(profile, workers=workers or None, trials=trials, data=data,
                                 lake_version=lake_version,
                                 side_versions=_table_versions(side_version))
    for line in search_summary_lines(summary):
        console.print(line, soft_wrap=True, markup=False)


def _lake_universe(config, paths) -> tuple[tuple[str, ...], dict[str, str]] | None:
    """The run's symbols and the inputs they lack, where the lake holds them (else None)."""
    from factory.data.lake import Lake
    from factory.data.universe import MissingSymbolsError, resolve_symbols
    from factory.training.datasets import lake_missing_inputs

    lake = Lake(paths.lake)
    try:
        symbols = resolve_symbols(config, lake)
    except MissingSymbolsError:
        return None
    return symbols, lake_missing_inputs(lake, symbols, (config.data.start, config.data.end))


def _table_versions(pairs: list[str]) -> dict[str, int]:
    """``TABLE=N`` options as a dict; a malformed one is refused with what to write."""
    versions = {}
    for pair in pairs:
        table, _, number = pair.partition("=")
        if not number.isdigit():
            raise ValueError(f"--side-version {pair!r}: write TABLE=N, e.g. sentiment=3")
        versions[table] = int(number)
    return versions


@app.command("select")
@clean_errors
def select_command(
    profile: str = typer.Option("demo"),
    wait: bool = typer.Option(True, help="wait for another writer of this home to finish"),
) -> None:
    """Rate the latest versions; stage them Production, Staging or Archived, with reasons."""
    paths = configure_environment()
    from factory.locking import writer_lock
    from flows.runtime import shared_prefect_api
    from flows.selection import selection_flow

    with (writer_lock(paths, f"factory select --profile {profile}", wait=wait, on_wait=notice),
          shared_prefect_api(on_slow_start=notice)):
        result = selection_flow(profile=profile)
    console.print(result["headline"], soft_wrap=True)
    console.print(f"{len(result['chosen'])} in Production, {len(result['staging'])} in "
                  f"Staging; {len(result['changes'])} registry changes")


@app.command()
@clean_errors
def snapshot(
    replay_bars: int = typer.Option(0, help="first release this many held-back bars"),
    wait: bool = typer.Option(True, help="wait for another writer of this home to finish"),
) -> None:
    """Score new bars with every Production and Staging model: their live (paper) record."""
    paths = configure_environment()
    from factory.locking import writer_lock
    from flows.runtime import shared_prefect_api
    from flows.snapshot import snapshot_flow

    with (writer_lock(paths, "factory snapshot", wait=wait, on_wait=notice),
          shared_prefect_api(on_slow_start=notice)):
        summary = snapshot_flow(replay_bars=replay_bars)
    for name, count in sorted(summary["scored"].items()):
        live = summary["metrics"][name]
        record = (f"live Sharpe {live['live_sharpe']:.2f} over {live['live_n_obs']:.0f} bars"
                  if live["live_n_obs"] else "no live record yet (no bar after its refit)")
        console.print(f"{name}: {count} new live bars; {record}", soft_wrap=True)
    for name, why in sorted(summary["skipped"].items()):
        console.print(f"{name}: skipped, {why}", soft_wrap=True)
    if not summary["scored"] and not summary["skipped"]:
        console.print("no model in Production or Staging: nothing to score")


@app.command()
@clean_errors
def replay(
    bars: int = typer.Option(1, help="held-back bars (timestamps) to release"),
    wait: bool = typer.Option(True, help="wait for another writer of this home to finish"),
) -> None:
    """Release held-back bars (`factory ingest --hold-back N`) into the lake."""
    from factory.data.lake import Lake
    from factory.data.replay import release
    from factory.locking import writer_lock

    paths = configure_environment()
    _state["committing"] = True
    with writer_lock(paths, f"factory replay --bars {bars}", wait=wait, on_wait=notice):
        result = release(paths.replay, Lake(paths.lake), bars)
    console.print(f"released {result.released_bars} bars through {result.through}; "
                  f"{result.remaining} held back; lake version {result.lake_version}")


@app.command()
@clean_errors
def models() -> None:
    """List the architectures of the model zoo with their family and capabilities."""
    from factory.reports import print_models

    print_models(console)


@app.command()
@clean_errors
def features(profile: str = typer.Option("demo", help="conf/profiles/<profile>.yaml")) -> None:
    """List the feature sets, the inputs each needs, and whether the profile's grid uses it."""
    from factory.reports import print_features

    print_features(console, load_config(profile))


@app.command()
@clean_errors
def leaderboard(profile: str = typer.Option("demo")) -> None:
    """Print the leaderboard: rank, registered model, OOS Sharpe, drawdown, win rate, stage."""
    from factory.reports import print_leaderboard

    print_leaderboard(console, configure_environment(), load_config(profile))


@app.command("check-data")
@clean_errors
def check_data(
    paths: list[Path] = typer.Argument(None, help="files to check (default: the lake)"),
    symbol: str = typer.Option(None, help="the symbol of a single-asset file"),
    time_column: str = typer.Option(None, help="the time column, if not ts/timestamp/date/..."),
    time_unit: str = typer.Option(None, help="unit of integer times (see `factory ingest`)"),
    time_format: str = typer.Option(None, help="strptime format of text times"),
    kind: str = typer.Option("bars", help="what the files hold: bars, sentiment or onchain"),
    lake: bool = typer.Option(True, help="check the lake: bars, sentiment and on-chain "
                              "tables, and every feature set built from them"),
    packaged: bool = typer.Option(True, help="check the packaged data sets (demo, bokeh) "
                                  "and every feature set built from them"),
    profile: str = typer.Option("demo", help="conf/profiles/<profile>.yaml: the feature "
                                "sets' parameters"),
) -> None:
    """Validate files (without committing), or run every great-expectations suite on the lake
    and the packaged data and write Data Docs (HTML) under data/quality/docs; exit code 1 when
    a suite fails."""
    from factory.data.sources import ReadOptions
    from factory.reports import check_data_quality, check_files

    home = configure_environment()
    if paths:
        options = ReadOptions(symbol=symbol, time_column=time_column, time_unit=time_unit,
                              time_format=time_format)
        check_files(console, [str(p) for p in paths], options, kind=kind)
        return
    params = {name: dict(fs.params) for name, fs in load_config(profile).features.items()}
    report = check_data_quality(console, home, lake=lake, packaged=packaged, params=params)
    if report.failed:
        _fail(f"{len(report.failed)} data quality suite(s) failed: "
              f"{', '.join(r.name for r in report.failed)}; details above and in the Data "
              f"Docs at {report.index}")


@app.command()
@clean_errors
def serve(
    profile: str = typer.Option("demo"),
    replay_bars: int = typer.Option(0, help="each snapshot first releases this many "
                                    "held-back bars (a compressed replay)"),
) -> None:
    """Serve the deployments: factory on demand, snapshot every 5 min, selection every 24 h,
    lake maintenance every 7 days.

    Stops on SIGTERM or Ctrl-C with one line and exit code 0: runs in flight are cancelled,
    the schedules paused (a second signal stops without waiting).
    """
    configure_environment()
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    from flows.serve import serve_deployments

    where = PREFECT_UI_URL.value() or PREFECT_API_URL.value() or "a temporary Prefect API"
    console.print(f"serving factory/factory (on demand), snapshot/snapshot-5min, "
                  "selection/selection-daily (every 24 h), portfolio/portfolio-after-selection "
                  "(when a selection-daily run completes), backtest/backtest (on demand) and "
                  "lake-maintenance/lake-maintenance-weekly (every 7 days), profile "
                  f"{profile}, at {where}; stop with Ctrl-C")
    stopped_by = serve_deployments(profile, replay_bars)
    console.print(f"stopped serving ({stopped_by}): any run in flight cancelled, schedules paused")


@app.command()
@clean_errors
def backup(destination: Path = typer.Argument(..., help="a new folder for the copy")) -> None:
    """Copy this FACTORY_HOME (lake, MLflow store, artifacts) to a new home that stands alone."""
    from factory.home import backup_home
    from factory.locking import writer_lock

    paths = configure_environment()
    with writer_lock(paths, f"factory backup {destination}", on_wait=notice):
        copied = backup_home(paths, destination)
    console.print(f"copied {paths.home} to {copied}; use it with FACTORY_HOME={copied}")


@app.command()
@clean_errors
def relocate() -> None:
    """Point a copied or moved FACTORY_HOME's MLflow store at its own artifacts."""
    from factory.home import relocate_home
    from factory.locking import writer_lock

    paths = configure_environment()
    with writer_lock(paths, "factory relocate", on_wait=notice):
        old = relocate_home(paths)
    console.print(f"{paths.home}: artifact locations moved from {old} to {paths.artifact_root}"
                  if old else f"{paths.home}: artifact locations already point here")


from factory import cli_trading  # noqa: E402,F401 - registers its commands on app
from factory.cli_lake import lake_app  # noqa: E402 - it reads this module's helpers

app.add_typer(lake_app, name="lake")

if __name__ == "__main__":
    app()
