"""``factory backtest``: a model set's out-of-sample signals through the event-driven engine,
logged to MLflow with its plots, orders and fills.

The set is one model (``--model NAME``) or the Production set with the latest selection's
allocation (``--include-staging`` trades the Staging set where no model is in Production,
and every output says so). See ``factory.trading.model_set`` for why the weights come from
the walk-forward predictions and ``factory.trading.backtest_run`` for the two runs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from factory.config import TradingConfig
from factory.data.lake import Lake
from factory.paths import FactoryPaths
from factory.selection_run import latest_audit
from factory.tracking import Tracker
from factory.trading.backtest_run import BacktestReport, run_backtest
from factory.trading.model_set import ModelSet, choose_models, target_weights
from factory.training.plots import equity_drawdown_png


@dataclass(frozen=True)
class BacktestRun:
    """What ``factory backtest`` did: the set, the report and where MLflow keeps it."""

    model_set: ModelSet
    report: BacktestReport
    lake_version: int
    run_id: str

    def headline(self) -> str:
        """One line: the set, the window and the after-cost figures."""
        m = self.report.metrics
        return (f"{self.model_set.description}, {self.report.start:%Y-%m-%d} to "
                f"{self.report.end:%Y-%m-%d}, lake v{self.lake_version}: Sharpe "
                f"{m['sharpe']:.2f} after costs (vectorised evaluation {m['vectorised_sharpe']:.2f}"
                f"), max drawdown {m['max_drawdown']:.1%}, {int(m['n_fills'])} fills"
                + (", kill switch fired" if m["kill_switch"] else ""))


def model_set_for(tracker: Tracker, paths: FactoryPaths, model: str | None,
                  include_staging: bool) -> ModelSet:
    """The named model or the staged set, shared by the latest selection's allocation."""
    audit = latest_audit(paths)
    allocation = None if audit is None else dict(zip(audit["model_name"], audit["weight"],
                                                      strict=True))
    return choose_models(tracker.latest_versions(), allocation, model=model,
                         include_staging=include_staging)


def backtest_models(paths: FactoryPaths, trading: TradingConfig, *, model: str | None = None,
                    include_staging: bool = False, start: datetime | None = None,
                    end: datetime | None = None) -> BacktestRun:
    """Backtest a model set on the lake's bars and log it to the trading experiment.

    Raises
    ------
    NoModelsError
        When the asked model or set does not exist.
    ValueError
        When the models share no out-of-sample bar, mix evaluation conventions, or the lake
        lacks their bars.
    """
    tracker = Tracker(paths)
    chosen = model_set_for(tracker, paths, model, include_staging)
    oos = {row["model_name"]: tracker.oos_predictions(row["run_id"])
           for row in chosen.models.iter_rows(named=True)}
    weights = target_weights(chosen, oos)
    cost_bps, execution_price = chosen.trading_convention()
    lake = Lake(paths.lake)
    symbols = sorted(weights["symbol"].unique().to_list())
    frequencies = lake.bar_frequencies(symbols)
    if not frequencies:
        raise ValueError(f"the lake at {lake.root} holds no bars of {symbols}")
    report = run_backtest(lake.read_bars(symbols), weights, trading,
                          execution_price=execution_price, cost_bps=cost_bps,
                          periods_per_year=next(iter(frequencies.values())).periods_per_year,
                          start=start, end=end)
    lake_version = lake.data_version()
    record = {"kind": "backtest", **chosen.record(), "lake_version": lake_version,
              "symbols": ",".join(symbols), "start": report.start.isoformat(),
              "end": report.end.isoformat(), "execution_price": execution_price,
              "evaluation_cost_bps": cost_bps, **trading.model_dump(exclude={"risk"}),
              **{f"risk.{k}": v for k, v in trading.risk.model_dump().items()},
              "allocation": dict(zip(chosen.models["model_name"], chosen.models["weight"],
                                     strict=True))}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_outputs(report, folder, f"{chosen.description}, lake v{lake_version}")
        run_id = tracker.log_trading_run(f"backtest-{report.start:%Y%m%d}-{report.end:%Y%m%d}",
                                         record, report.metrics, folder)
    return BacktestRun(chosen, report, lake_version, run_id)


def _write_outputs(report: BacktestReport, folder: Path, title: str) -> None:
    """The equity picture and the run's tables, as the MLflow run's artifacts."""
    result = report.result
    equity_drawdown_png(result.returns, folder / "equity_drawdown.png",
                        title=f"backtest (after costs): {title}")
    result.returns.write_parquet(folder / "returns.parquet")
    result.history.write_parquet(folder / "history.parquet")
    result.weights.write_parquet(folder / "weights.parquet")
    result.orders.write_parquet(folder / "orders.parquet")
    result.fills.write_parquet(folder / "fills.parquet")
    result.log.write_csv(folder / "event_log.csv")
