"""One RunSpec end to end: windows -> purged walk-forward folds -> out-of-sample predictions
-> positions traded at the next bar -> costed returns -> metrics, and the fitted model saved.

One pooled model is trained per fold on every asset of the universe; the portfolio return of
a bar is the equal-weighted mean of the assets' strategy returns. The model saved for the
registry is the last fold's: its out-of-sample period is the most recent one reported, and
``meta.json`` beside it holds everything the served model needs to go from raw bars to
positions (feature set and its typed parameters, warm-up, lookback, signal scale).
Metrics annualise with the universe's stored bar frequency (``DatasetRef.periods_per_year``),
over all folds together and per fold (``SpecOutcome.fold_metrics``).
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from factory.evaluation.metrics import prediction_metrics, trading_metrics
from factory.evaluation.signals import positions_from_scores, strategy_returns
from factory.grid import RunSpec
from factory.training.datasets import DatasetRef, load_bars, load_features
from factory.training.predictor import BAR_COLUMNS
from factory.training.splits import Fold, label_forward_returns, walk_forward_folds
from factory.training.windows import FeatureScaler, sliding_windows
from feature_sets import feature_names
from model_zoo.base import Model, ModelConfig, SupervisedData
from model_zoo.registry import build_model, capabilities

LABEL_HORIZON = 2
"""Bars from the decision bar to the end of its label (trade at t+1, hold to t+2)."""
MODEL_META_FORMAT = 2
"""Version of ``meta.json``; 2 added the feature warm-up and what serving from bars needs."""


@dataclass
class Panel:
    """Every window of the universe for one (feature set, lookback), sorted by (asset, time)."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    ts: np.ndarray
    symbols: tuple[str, ...]
    feature_names: tuple[str, ...]
    warmup: int
    """Leading bars without every feature (indicator warm-up), the most over the assets."""


@dataclass
class SpecOutcome:
    """What training one RunSpec produced; plain data, so it crosses process boundaries."""

    spec: RunSpec
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    oos: pl.DataFrame | None = None
    portfolio: pl.DataFrame | None = None
    model_dir: str | None = None
    error: str | None = None
    seconds: float = 0.0
    fold_metrics: list[dict[str, float]] = field(default_factory=list)
    """One dict per walk-forward fold: ``fold`` (its index), ``sharpe``, ``n_oos_bars``, ..."""
    bar_frequency: str | None = None
    """The universe's stored bar frequency (``"1d"``, ``"1h"``, ...)."""


def build_panel(spec: RunSpec, ref: DatasetRef) -> Panel:
    """Windows and labels of every asset for ``spec``'s feature set and lookback."""
    bars = load_bars(ref)
    features = load_features(ref, spec.feature_set, spec.feature_params)
    parts_X, parts_y, parts_g, parts_ts = [], [], [], []
    names: tuple[str, ...] = ()
    warmup = 0
    for code, symbol in enumerate(ref.symbols):
        frame = features[symbol]
        names = feature_names(frame)
        asset_bars = bars.filter(pl.col("symbol") == symbol).sort("ts")
        if asset_bars["ts"].to_list() != frame["ts"].to_list():
            raise ValueError(f"features of {symbol} are not aligned with its bars")
        prices = asset_bars[spec.evaluation.execution_price].to_numpy()
        labels = label_forward_returns(prices, horizon=LABEL_HORIZON)
        matrix = frame.select(names).to_numpy()
        warmup = max(warmup, _leading_incomplete_rows(matrix))
        X, ends = sliding_windows(matrix, spec.lookback)
        labelled = np.isfinite(labels[ends])
        parts_X.append(X[labelled])
        parts_y.append(labels[ends][labelled])
        parts_g.append(np.full(int(labelled.sum()), code, dtype=np.int64))
        parts_ts.append(frame["ts"].to_numpy()[ends][labelled])
    return Panel(
        X=np.concatenate(parts_X), y=np.concatenate(parts_y).astype(np.float32),
        groups=np.concatenate(parts_g), ts=np.concatenate(parts_ts),
        symbols=ref.symbols, feature_names=names, warmup=warmup,
    )


def _leading_incomplete_rows(matrix: np.ndarray) -> int:
    """Rows before the first one whose every feature is finite (all of them if none is)."""
    complete = np.isfinite(matrix).all(axis=1)
    return int(np.argmax(complete)) if complete.any() else len(matrix)


def _subset(panel: Panel, scaler: FeatureScaler, rows: np.ndarray) -> SupervisedData:
    return SupervisedData(X=scaler.transform(panel.X[rows]), y=panel.y[rows],
                          groups=panel.groups[rows])


@dataclass
class FoldResult:
    """One fold's fitted model and its out-of-sample scores."""

    model: Model
    scaler: FeatureScaler
    test: np.ndarray
    scores: np.ndarray
    signal_scale: float
    fit_seconds: float
    predict_seconds: float
    n_predicted: int


def _fit_fold(spec: RunSpec, panel: Panel, fold: Fold, positions_of: np.ndarray) -> FoldResult:
    """Fit on the fold's training rows, then score its test block.

    A model that filters the whole history (ARIMA) scores the test block with every window
    before it in its input, as the served model does with the bars it is given: its state
    carries over from the start of the data instead of restarting at the test block (causal
    either way; the parameters come from training only). A model that reads each window
    alone needs only the test windows.
    """
    train = np.isin(positions_of, fold.train)
    valid = np.isin(positions_of, fold.valid)
    test = np.isin(positions_of, fold.test)
    scored = test if capabilities(spec.arch).uses_lookback else positions_of <= fold.test.max()
    fitted = FeatureScaler.fit(panel.X[train][:, -1, :])
    # As ``FeatureScaler.load`` returns it (float64), so serving computes what was evaluated.
    scaler = FeatureScaler(mean=fitted.mean.astype(np.float64),
                           std=fitted.std.astype(np.float64))
    config = ModelConfig(hparams=spec.hparams, feature_names=panel.feature_names,
                         lookback=spec.lookback, seed=spec.seed)
    train_data = _subset(panel, scaler, train)
    started = time.perf_counter()
    model = build_model(spec.arch, config).fit(
        train_data, _subset(panel, scaler, valid) if valid.any() else None)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scored_data = _subset(panel, scaler, scored)
    scores = model.predict(scored_data.X, scored_data.groups)[test[scored]]
    predict_seconds = time.perf_counter() - started
    # Positions are scores in units of the model's own spread on its training fold.
    signal_scale = float(np.std(model.predict(train_data.X, train_data.groups))) or 1.0
    return FoldResult(model, scaler, test, scores, signal_scale, fit_seconds, predict_seconds,
                      int(scored.sum()))


def _save_model(spec: RunSpec, panel: Panel, model, scaler, signal_scale: float,
                directory: Path, bar_frequency: str | None) -> None:
    """Write the model, its training-fold scaler and ``meta.json`` to ``directory``.

    ``meta.json`` keeps values typed (the feature parameters stay ints and floats): it is what
    ``Predictor`` reads to build the feature set from raw bars the way training did.
    """
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / "model")
    scaler.save(directory / "scaler.json")
    meta = {"format": MODEL_META_FORMAT, "spec_id": spec.id, "model_name": spec.model_name,
            "arch": spec.arch, "lookback": spec.lookback, "feature_set": spec.feature_set,
            "feature_params": dict(spec.feature_params),
            "feature_names": list(panel.feature_names),
            "feature_warmup_bars": panel.warmup, "min_bars": panel.warmup + spec.lookback,
            "signal_scale": signal_scale, "bar_columns": list(BAR_COLUMNS),
            "symbols": list(panel.symbols), "bar_frequency": bar_frequency}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))


def evaluate_spec(spec: RunSpec, ref: DatasetRef, model_dir: Path) -> SpecOutcome:
    """Train and evaluate ``spec`` out of sample; save the last fold's model to ``model_dir``.

    Returns
    -------
    SpecOutcome
        Status FINISHED with metrics, per-asset OOS rows and the portfolio return series.
    """
    panel = build_panel(spec, ref)
    timeline = np.unique(panel.ts)
    positions_of = np.searchsorted(timeline, panel.ts)
    ev = spec.evaluation
    folds = walk_forward_folds(
        len(timeline), n_folds=ev.n_folds, test_fraction=ev.test_fraction,
        valid_fraction=ev.valid_fraction, horizon=LABEL_HORIZON, embargo=ev.embargo_bars,
        max_train=ev.max_train_bars,
    )
    oos_parts, results = [], []
    for fold in folds:
        result = _fit_fold(spec, panel, fold, positions_of)
        results.append(result)
        oos_parts.append(pl.DataFrame({
            "symbol": np.asarray(panel.symbols)[panel.groups[result.test]],
            "ts": panel.ts[result.test], "fold": np.full(int(result.test.sum()), fold.index),
            "score": result.scores.astype(np.float64),
            "position": positions_from_scores(result.scores, result.signal_scale),
            "label": panel.y[result.test].astype(np.float64),
        }))
    last = results[-1]
    _save_model(spec, panel, last.model, last.scaler, last.signal_scale, model_dir,
                ref.bar_frequency)
    oos = pl.concat(oos_parts).sort("symbol", "ts")
    oos = oos.with_columns(
        _costed_returns(oos, oos["position"], ev.cost_bps).alias("strategy_return"),
        _costed_returns(oos, pl.Series(np.ones(oos.height)), ev.cost_bps).alias("held"))
    portfolio = _equal_weight(oos, "strategy_return")
    periods_per_year = ref.periods_per_year  # the stored frequency, never a count of bars
    metrics = trading_metrics(portfolio["ret"].to_numpy(), periods_per_year)
    metrics |= prediction_metrics(oos["score"].to_numpy(), oos["label"].to_numpy())
    metrics |= {
        "buy_and_hold_sharpe": trading_metrics(
            _equal_weight(oos, "held")["ret"].to_numpy(), periods_per_year)["sharpe"],
        "fit_seconds": sum(r.fit_seconds for r in results),
        "predict_ms_per_1k": 1e6 * sum(r.predict_seconds for r in results)
                             / max(sum(r.n_predicted for r in results), 1),
        "turnover": float(oos.select(pl.col("position").diff().abs().over("symbol").mean()).item()
                          or 0.0),
        "n_folds": float(len(folds)),
        "periods_per_year": periods_per_year,
    }
    return SpecOutcome(spec=spec, status="FINISHED", metrics=metrics, oos=oos.drop("held"),
                       portfolio=portfolio, model_dir=str(model_dir),
                       fold_metrics=_fold_metrics(oos, folds, results, periods_per_year),
                       bar_frequency=ref.bar_frequency)


def _fold_metrics(oos: pl.DataFrame, folds: list[Fold], results: list[FoldResult],
                  periods_per_year: float) -> list[dict[str, float]]:
    """Out-of-sample figures of each fold's test block alone (costs as in the whole series)."""
    rows = []
    for fold, result in zip(folds, results, strict=True):
        part = oos.filter(pl.col("fold") == fold.index)
        trading = trading_metrics(_equal_weight(part, "strategy_return")["ret"].to_numpy(),
                                  periods_per_year)
        held = trading_metrics(_equal_weight(part, "held")["ret"].to_numpy(), periods_per_year)
        rows.append({
            "fold": float(fold.index), "sharpe": trading["sharpe"], "n_oos_bars": trading["n_obs"],
            "max_drawdown": trading["max_drawdown"], "buy_and_hold_sharpe": held["sharpe"],
            "directional_accuracy": prediction_metrics(
                part["score"].to_numpy(), part["label"].to_numpy())["directional_accuracy"],
            "signal_scale": result.signal_scale, "fit_seconds": result.fit_seconds,
        })
    return rows


def _costed_returns(oos: pl.DataFrame, positions: pl.Series, cost_bps: float) -> pl.Series:
    """Per-row returns of ``positions`` after turnover costs, asset by asset (oos is sorted)."""
    per_asset = [
        strategy_returns(positions.filter(oos["symbol"] == symbol).to_numpy(),
                         group["label"].to_numpy(), cost_bps)
        for (symbol,), group in oos.group_by("symbol", maintain_order=True)
    ]
    return pl.Series(np.concatenate(per_asset))


def _equal_weight(oos: pl.DataFrame, column: str) -> pl.DataFrame:
    """Portfolio return per bar: the mean of the assets' ``column`` (``ts``, ``ret``)."""
    return oos.group_by("ts").agg(pl.col(column).mean().alias("ret")).sort("ts")


def run_chunk(specs: list[RunSpec], ref: DatasetRef, runs_root: Path) -> list[SpecOutcome]:
    """Evaluate each spec; a failing spec is recorded FAILED with its traceback, others go on."""
    outcomes = []
    for spec in specs:
        model_dir = runs_root / spec.id / f"v{ref.lake_version}"
        started = time.perf_counter()
        try:
            outcome = evaluate_spec(spec, ref, model_dir)
        except Exception:  # noqa: BLE001 - one bad config must not stop the factory
            outcome = SpecOutcome(spec=spec, status="FAILED", error=traceback.format_exc())
        outcome.seconds = time.perf_counter() - started
        outcomes.append(outcome)
    return outcomes
