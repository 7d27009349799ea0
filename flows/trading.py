"""Trading flows: the event-driven backtest of a model set (``factory backtest``) and the
portfolio (``factory portfolio``: today's target weights and the backtest of their
construction), from the CLI or the Prefect UI; ``factory serve`` runs the portfolio after
each daily selection. Where that selection left no model in Production the portfolio run
completes having unwound the stored targets (``flatten_targets``), not failed.

Runs are named ``backtest-<what>-<YYYYmmdd-HHMM>`` and ``portfolio-<YYYYmmdd-HHMM>`` (UTC)
and log their headline at INFO; the markdown artifacts ``backtest`` and ``portfolio`` give
the figures and the MLflow run holding the plots.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from factory.config import load_config
from factory.locking import writer_lock
from factory.paths import configure_environment
from factory.trading.backtest_job import backtest_models
from factory.trading.model_set import NoModelsError
from factory.trading.portfolio_job import build_portfolio, flatten_targets
from tasks.results import JSON_RESULTS


def backtest_run_name() -> str:
    """``backtest-<model or set>-<YYYYmmdd-HHMM>``, in UTC."""
    parameters = flow_run.parameters
    what = parameters.get("model") or ("staged" if parameters.get("include_staging")
                                       else "production")
    return f"backtest-{what}-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="backtest", flow_run_name=backtest_run_name, persist_result=False,
      result_serializer=JSON_RESULTS)
def backtest_flow(profile: str = "demo", model: str | None = None,
                  include_staging: bool = False, start: datetime | None = None,
                  end: datetime | None = None) -> dict:
    """Backtest one model or the Production set; returns the headline, metrics and run id."""
    paths = configure_environment()
    trading = load_config(profile).trading
    run = backtest_models(paths, trading, model=model, include_staging=include_staging,
                          start=start, end=end)
    headline = run.headline()
    get_run_logger().info("%s (MLflow run %s)", headline, run.run_id)
    rows = "\n".join(f"| {k} | {v:.6g} |" for k, v in sorted(run.report.metrics.items()))
    create_markdown_artifact(
        markdown=f"# Backtest\n\n{headline}\n\n{run.model_set.caveat}\n\nMLflow run "
                 f"`{run.run_id}` (experiment model-factory-trading).\n\n"
                 f"| metric | value |\n|---|---|\n{rows}\n",
        key="backtest", description="Event-driven backtest (out of sample, after costs)")
    return {"headline": headline, "metrics": run.report.metrics, "run_id": run.run_id,
            "models": run.model_set.names, "lake_version": run.lake_version}


def portfolio_run_name() -> str:
    """``portfolio-<YYYYmmdd-HHMM>``, in UTC."""
    return f"portfolio-{datetime.now(UTC):%Y%m%d-%H%M}"


@flow(name="portfolio", flow_run_name=portfolio_run_name, persist_result=False,
      result_serializer=JSON_RESULTS)
def portfolio_flow(profile: str = "demo", include_staging: bool = False) -> dict:
    """Today's target weights (stored in the lake) and the construction's backtest."""
    paths = configure_environment()
    with writer_lock(paths, "portfolio flow"):  # it appends today's targets to the lake
        try:
            run = build_portfolio(paths, load_config(profile).trading,
                                  include_staging=include_staging)
        except NoModelsError as nothing:  # the selection promoted nothing: unwind, complete
            run, lines = None, [str(nothing), flatten_targets(paths)]
        else:
            lines = run.lines()
    get_run_logger().info("\n".join(lines))
    create_markdown_artifact(markdown="# Portfolio\n\n" + "\n\n".join(lines), key="portfolio",
                             description="Target weights and their backtest (OOS, after costs)")
    if run is None:
        return {"lines": lines, "run_id": None, "models": [], "targets": {}, "metrics": {}}
    return {"lines": lines, "run_id": run.run_id, "models": run.model_set.names,
            "targets": dict(zip(run.targets["symbol"], run.targets["weight"], strict=True)),
            "metrics": {**run.backtest.metrics, **run.path.summary()}}
