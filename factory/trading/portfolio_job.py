"""``factory portfolio`` and the portfolio flow: today's target weights from the Production
models' latest signals, and the event-driven backtest of the same construction over the
models' out-of-sample history, logged to MLflow.

Today's targets: each model of the set scores the lake's latest bars of its universe (the
registered version, as MLflow serves it), the set's forecast per asset is the
allocation-weighted score, and the mean-variance optimiser (``conf/trading.yaml``,
``portfolio``) rebalances from the targets the last run stored (lake table
``portfolio_targets``; flat before the first). A solve that fails keeps those targets and
says why. A symbol without a bar at the latest timestamp (a stock whose data ends years
before the indices) has no price to trade at: it is left out of the solve, held at 0, and
every output lists it.

The backtest: the same optimiser rebalanced through the walk-forward out-of-sample forecasts
(``factory.trading.portfolio_run``), then through the event-driven engine with the
realistic broker (``factory.trading.backtest_run``): out of sample and after costs.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from factory.config import TradingConfig
from factory.data.lake import Lake
from factory.paths import FactoryPaths
from factory.snapshot import UniverseBars
from factory.tracking import Tracker
from factory.trading.backtest_job import model_set_for
from factory.trading.backtest_run import BacktestReport, run_backtest
from factory.trading.model_set import ModelSet, expected_returns
from factory.trading.portfolio_plots import weights_png
from factory.trading.portfolio_run import (
    PortfolioPath,
    construct_portfolio,
    daily_returns,
    portfolio_optimizer,
)
from factory.training.plots import equity_drawdown_png

TARGETS_TABLE = "portfolio_targets"
"""Lake table of every stored target: ``as_of, decided_at, symbol, mu, weight, status``."""


@dataclass(frozen=True)
class PortfolioRun:
    """What one portfolio run decided and measured.

    Attributes
    ----------
    model_set : ModelSet
        The models whose signals it used.
    targets : pl.DataFrame
        ``symbol, mu, weight``: today's forecasts and target weights.
    as_of : datetime
        The bar whose close the targets were decided at.
    message : str
        Empty, or why the previous targets were kept.
    backtest : BacktestReport
        The construction backtested over the out-of-sample history.
    path : PortfolioPath
        The backtest's rebalances.
    lake_version : int
    run_id : str
        The MLflow run.
    stale : dict of str to datetime
        Symbols of the models' universe without a bar at ``as_of``, with their last bar:
        not traded (weight 0, left out of the solve).
    """

    model_set: ModelSet
    targets: pl.DataFrame
    as_of: datetime
    message: str
    backtest: BacktestReport
    path: PortfolioPath
    lake_version: int
    run_id: str
    stale: dict[str, datetime]

    def lines(self) -> list[str]:
        """What ``factory portfolio`` prints."""
        m = self.backtest.metrics
        lines = [f"{self.model_set.description}: target weights as of "
                 f"{self.as_of:%Y-%m-%d %H:%M} (lake v{self.lake_version})"]
        lines += [f"  {r['symbol']:10s} weight {r['weight']:+.4f}   forecast {r['mu']:+.5f}"
                  for r in self.targets.iter_rows(named=True)]
        lines += [f"  {symbol:10s} not traded: no bar since {last:%Y-%m-%d}"
                  for symbol, last in self.stale.items()]
        if self.message:
            lines.append(f"previous targets kept: {self.message}")
        lines.append(f"backtest {self.backtest.start:%Y-%m-%d} to {self.backtest.end:%Y-%m-%d}"
                     f" (out of sample, after costs): Sharpe {m['sharpe']:.2f}, max drawdown "
                     f"{m['max_drawdown']:.1%}, {self.path.rebalances} rebalances, "
                     f"{self.path.kept_previous} kept the previous weights")
        lines.append(self.model_set.caveat)
        lines.append(f"MLflow run {self.run_id} (experiment model-factory-trading)")
        return lines


def build_portfolio(paths: FactoryPaths, trading: TradingConfig, *,
                    include_staging: bool = False) -> PortfolioRun:
    """Today's targets, stored in the lake, and the backtest of the construction, logged.

    Raises
    ------
    NoModelsError
        When no model is in Production (nor Staging, with ``include_staging``).
    ValueError
        When the models trade fewer than two assets, or the lake lacks their bars.
    """
    tracker = Tracker(paths)
    chosen = model_set_for(tracker, paths, None, include_staging)
    lake = Lake(paths.lake)
    symbols = sorted({s for row in chosen.models["symbols"] for s in row.split(",")})
    bars = lake.read_bars(symbols)
    returns = daily_returns(bars)
    config = trading.portfolio
    forecasts, as_of = _todays_forecasts(tracker, lake, chosen)
    stale = stale_symbols(bars, as_of)
    tradable = [s for s in symbols if s not in stale]
    if len(tradable) < 2:
        raise ValueError(f"only {tradable} have a bar at {as_of:%Y-%m-%d %H:%M} (stale: "
                         f"{', '.join(f'{s} since {t:%Y-%m-%d}' for s, t in stale.items())}): "
                         "a portfolio needs two assets with today's prices")
    optimizer, estimate = portfolio_optimizer(config, tuple(tradable))
    mu = np.array([forecasts.get(s, 0.0) for s in tradable])
    held = _stored_targets(lake, tradable)
    result = optimizer.rebalance(mu, estimate(returns, as_of), held)
    targets = pl.DataFrame({"symbol": tradable, "mu": mu, "weight": np.array(result.weights)})
    oos = {row["model_name"]: tracker.oos_predictions(row["run_id"])
           for row in chosen.models.iter_rows(named=True)}
    path = construct_portfolio(expected_returns(chosen, oos), returns, config)
    cost_bps, execution_price = chosen.trading_convention()
    frequency = next(iter(lake.bar_frequencies(symbols).values()))
    report = run_backtest(bars, path.weights, trading, execution_price=execution_price,
                          cost_bps=cost_bps, periods_per_year=frequency.periods_per_year)
    lake_version = lake.data_version()
    run_id = _log(tracker, chosen, targets, as_of, result.message, report, path, lake_version,
                  trading, stale)
    # Stored last: a run that fails before this point leaves the stored targets as they were.
    _store_targets(lake, targets, as_of, result.status, result.kept_previous)
    return PortfolioRun(chosen, targets, as_of, result.message, report, path, lake_version,
                        run_id, stale)


def stale_symbols(bars: pl.DataFrame, as_of: datetime) -> dict[str, datetime]:
    """Symbols whose last bar comes before ``as_of``, with that bar: no price to trade at."""
    last = bars.group_by("symbol").agg(pl.col("ts").max()).filter(pl.col("ts") < as_of)
    return dict(sorted(last.iter_rows()))


def _todays_forecasts(tracker: Tracker, lake: Lake, chosen: ModelSet
                      ) -> tuple[dict[str, float], datetime]:
    """Per symbol, the allocation-weighted score of the models at the latest bar, and that
    bar (symbols without a bar there have no forecast)."""
    mu: dict[str, float] = {}
    as_of = None
    universes: dict[str, UniverseBars] = {}  # models of one universe share its bars, read once
    for row in chosen.models.iter_rows(named=True):
        if row["symbols"] not in universes:
            universes[row["symbols"]] = UniverseBars(lake, row["symbols"], lake.version())
        universe = universes[row["symbols"]]
        last = universe.bars["ts"].max()
        recent = universe.recent_bars(last)
        scored = recent.select("symbol", "ts").with_columns(
            tracker.load_predictor(row["model_name"], row["version"])
            .predict_bars(recent, universe.side_tables)["score"])
        latest = scored.filter(pl.col("ts") == last)
        for symbol, score in latest.select("symbol", "score").iter_rows():
            if np.isfinite(score):
                mu[symbol] = mu.get(symbol, 0.0) + row["weight"] * score
        as_of = last if as_of is None else max(as_of, last)
    return mu, as_of


def flatten_targets(paths: FactoryPaths) -> str:
    """With no model to trade: unwind whatever the last stored targets hold.

    A selection that demotes every Production model leaves nothing whose signals may trade,
    so the book goes flat rather than keep the demoted models' last positions: weight 0 is
    stored for each symbol the last targets held, decided at those symbols' latest bar, and
    the paper account trades out of them. Nothing is stored when nothing was held.

    Returns
    -------
    str
        What was done, for the portfolio command and flow to print.
    """
    lake = Lake(paths.lake)
    if lake.version(TARGETS_TABLE) is None:
        return "no targets stored before: nothing to unwind"
    stored = lake.read_table(TARGETS_TABLE)
    last = stored.filter(pl.col("decided_at") == stored["decided_at"].max())
    held = sorted(last.filter(pl.col("weight") != 0.0)["symbol"].to_list())
    if not held:
        return "the stored targets hold nothing: nothing to unwind"
    as_of = lake.read_bars(held)["ts"].max()
    flat = pl.DataFrame({"symbol": held, "mu": [0.0] * len(held), "weight": [0.0] * len(held)})
    _store_targets(lake, flat, as_of, "no-models", kept_previous=False)
    return (f"targets set flat as of {as_of:%Y-%m-%d %H:%M} for {', '.join(held)} "
            "(held before): the paper account unwinds them")


def _stored_targets(lake: Lake, symbols: list[str]) -> np.ndarray:
    """The weights the last run stored for ``symbols`` (0 where none, or before any)."""
    if lake.version(TARGETS_TABLE) is None:
        return np.zeros(len(symbols))
    stored = lake.read_table(TARGETS_TABLE)
    last = stored.filter(pl.col("decided_at") == stored["decided_at"].max())
    weight = dict(zip(last["symbol"], last["weight"], strict=True))
    return np.array([weight.get(s, 0.0) for s in symbols])


def _store_targets(lake: Lake, targets: pl.DataFrame, as_of: datetime, status: str,
                   kept_previous: bool) -> None:
    lake.append_table(TARGETS_TABLE, targets.with_columns(
        pl.lit(as_of).cast(pl.Datetime("us")).alias("as_of"),
        pl.lit(datetime.now(UTC).replace(tzinfo=None)).cast(pl.Datetime("us"))
        .alias("decided_at"),
        pl.lit(status).alias("status"), pl.lit(kept_previous).alias("kept_previous")))


def _log(tracker: Tracker, chosen: ModelSet, targets: pl.DataFrame, as_of: datetime,
         message: str, report: BacktestReport, path: PortfolioPath, lake_version: int,
         trading: TradingConfig, stale: dict[str, datetime]) -> str:
    """The portfolio's MLflow run: today's targets, the backtest's figures and pictures."""
    record = {"kind": "portfolio", **chosen.record(), "lake_version": lake_version,
              "as_of": as_of.isoformat(), "kept_previous_targets": message,
              "backtest_start": report.start.isoformat(),
              "backtest_end": report.end.isoformat(), "failures": path.failures,
              **{f"portfolio.{k}": v for k, v in trading.portfolio.model_dump().items()},
              "targets": dict(zip(targets["symbol"], targets["weight"], strict=True)),
              "stale_symbols": {s: t.isoformat() for s, t in stale.items()}}
    metrics = {**report.metrics, **path.summary(),
               "target_gross": float(targets["weight"].abs().sum()),
               "target_net": float(targets["weight"].sum())}
    title = f"{chosen.description}, mean-variance, lake v{lake_version}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        targets.write_csv(folder / "targets.csv")
        path.weights.write_parquet(folder / "target_weights.parquet")
        report.result.returns.write_parquet(folder / "returns.parquet")
        report.result.fills.write_parquet(folder / "fills.parquet")
        equity_drawdown_png(report.result.returns, folder / "equity_drawdown.png",
                            title=f"portfolio backtest (after costs): {title}")
        weights_png(path.weights, folder / "target_weights.png", title=title)
        return tracker.log_trading_run(f"portfolio-{as_of:%Y%m%d}", record, metrics, folder)
