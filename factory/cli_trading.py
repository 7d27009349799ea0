"""``factory backtest``, ``factory portfolio`` and ``factory paper``: the event-driven
backtest of one model or of the Production set, today's target portfolio, and the
paper-trading runner on the snapshot feed.

``factory.cli`` imports this module at its end, after its app, console and error handling
exist; the commands import MLflow only when they run and need no Prefect API (the
``backtest`` flow, ``flows.trading``, runs the same job from the Prefect UI).
"""

from __future__ import annotations

from datetime import datetime

import typer

from factory.cli import app, clean_errors, console, notice
from factory.config import load_config
from factory.paths import configure_environment


@app.command()
@clean_errors
def backtest(
    model: str = typer.Option(None, help="one registered model (default: the Production set)"),
    production: bool = typer.Option(False, "--production",
                                    help="the Production set with its allocation (default)"),
    include_staging: bool = typer.Option(False, "--include-staging",
                                         help="trade the Staging set where none is in "
                                         "Production (every output says so)"),
    start: datetime = typer.Option(None, help="first decision bar (default: the first "
                                   "out-of-sample one)"),
    end: datetime = typer.Option(None, help="last decision bar"),
    profile: str = typer.Option("demo", help="conf/profiles/<profile>.yaml (trading section)"),
) -> None:
    """Replay the models' out-of-sample signals through the event-driven engine (next-bar
    fills, commission, slippage, volume caps, risk limits); log it to MLflow with its plots."""
    if model and production:
        raise ValueError("--model and --production exclude each other")
    from factory.trading.backtest_job import backtest_models

    paths = configure_environment()
    run = backtest_models(paths, load_config(profile).trading, model=model,
                          include_staging=include_staging, start=start, end=end)
    console.print(run.headline())
    if run.model_set.caveat:
        console.print(run.model_set.caveat)
    console.print(f"MLflow run {run.run_id} (experiment model-factory-trading): equity and "
                  "drawdown, orders, fills, event log")


@app.command()
@clean_errors
def portfolio(
    include_staging: bool = typer.Option(False, "--include-staging",
                                         help="use the Staging set where none is in "
                                         "Production (every output says so)"),
    profile: str = typer.Option("demo", help="conf/profiles/<profile>.yaml (trading section)"),
    wait: bool = typer.Option(True, help="wait for another writer of this home to finish"),
) -> None:
    """Today's target weights from the Production models' latest signals (mean-variance,
    factor risk model), stored in the lake; and the construction's out-of-sample backtest."""
    from factory.locking import writer_lock
    from factory.trading.model_set import NoModelsError
    from factory.trading.portfolio_job import build_portfolio, flatten_targets

    paths = configure_environment()
    with writer_lock(paths, "factory portfolio", wait=wait, on_wait=notice):
        try:
            run = build_portfolio(paths, load_config(profile).trading,
                                  include_staging=include_staging)
        except NoModelsError:  # unwind what was held, then say why (exit 1)
            console.print(flatten_targets(paths))
            raise
    for line in run.lines():
        console.print(line)


@app.command()
@clean_errors
def paper(
    profile: str = typer.Option("demo", help="conf/profiles/<profile>.yaml (trading section)"),
    wait: bool = typer.Option(True, help="wait for another writer of this home to finish"),
) -> None:
    """Paper-trade the stored target portfolio on the bars that reached the lake since it was
    decided (the snapshot feed), with the backtest's very classes; store the new account rows
    and fills."""
    from factory.locking import writer_lock
    from factory.trading.paper_job import paper_trade

    paths = configure_environment()
    config = load_config(profile)
    with writer_lock(paths, "factory paper", wait=wait, on_wait=notice):
        run = paper_trade(paths, config.trading, config.evaluation.execution_price)
    for line in run.lines():
        console.print(line)
