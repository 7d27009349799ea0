"""One RunSpec end to end: windows -> purged walk-forward folds -> out-of-sample predictions
-> positions traded at the next bar -> costed returns -> metrics, then the model refit on all
history and saved.

One pooled model is trained per fold on every asset of the universe; the portfolio return of
a bar is the equal-weighted mean of the assets' strategy returns. Metrics annualise with the
universe's stored bar frequency (``DatasetRef.periods_per_year``), over all folds together
and per fold (``SpecOutcome.fold_metrics``).

The model saved for the registry is not a fold's (the last fold's stops a test block before
the data ends) but the same spec refit on every labelled window (rule 10): a scaler fitted
on all of them, the folds' median training budget (``Model.training_budget``: the boosting
rounds or epochs their early stopping kept) in place of a validation block, and a signal
scale from its own training predictions. The reported figures stay the walk-forward ones;
``meta.json`` records both (``walk_forward`` and ``refit``) with everything the served model
needs to go from raw bars to positions (feature set and its typed parameters, warm-up,
lookback, signal scale).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from factory.evaluation.metrics import prediction_metrics, trading_metrics
from factory.evaluation.signals import positions_from_scores, strategy_returns
from factory.grid import RunSpec
from factory.training.datasets import DatasetRef, load_bars, load_features
from factory.training.normalisers import RankGaussScaler, fit_normaliser
from factory.training.predictor import BAR_COLUMNS
from factory.training.splits import Fold, label_forward_returns, walk_forward_folds
from factory.training.windows import FeatureScaler, sliding_windows
from feature_sets import feature_names
from model_zoo.base import Model, ModelConfig, SupervisedData
from model_zoo.registry import build_model, capabilities

LABEL_HORIZON = 2
"""Bars from the decision bar to the end of its label (trade at t+1, hold to t+2)."""
MODEL_META_FORMAT = 4
"""Version of ``meta.json``; 2 added the feature warm-up and what serving from bars needs,
3 the refit on all history (``refit``) and the evaluation it stands for (``walk_forward``),
4 the calendar and side-table versions feature sets read (``calendar``, ``side_versions``)."""
Normaliser = FeatureScaler | RankGaussScaler
"""A fitted feature normaliser (see ``factory.training.normalisers``)."""
FoldHook = Callable[[int, dict[str, float]], bool | None]
"""Called by :func:`evaluate_spec` after each walk-forward fold with the fold's index and the
trading metrics (``sharpe``, ...) of the folds so far; returning True stops the walk-forward
there (a hyperparameter search prunes a weak trial this way)."""
EVALUATED = "EVALUATED"
"""Status of an outcome evaluated walk-forward without the refit (``refit=False``): metrics
and out-of-sample series, no model."""


@dataclass
class Panel:
    """Every window of the universe for one (feature set, lookback), sorted by (asset, time)."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    ts: np.ndarray
    times: np.ndarray
    """Position of each window's last bar on the universe's timeline (shared across assets)."""
    symbols: tuple[str, ...]
    feature_names: tuple[str, ...]
    warmup: int
    """Leading bars without every feature (indicator warm-up), the most over the assets."""
    last_bar: datetime
    """The latest bar of the data, labelled or not (the last windows' labels end there)."""


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
    trained_through: str | None = None
    """ISO time of the last bar the saved (refit) model's data reached: the data's last bar,
    where the label of its last training window ends."""
    picture: str | None = None
    """The equity and drawdown PNG the worker drew (``factory.training.outcomes``), if any."""
    walk_forward: dict[str, Any] = field(default_factory=dict)
    """What ``meta.json`` records as ``walk_forward`` (folds, fold budgets, metrics): what
    :func:`refit_spec` needs to refit the spec later. Not stored with the outcome on disk."""


def build_panel(spec: RunSpec, ref: DatasetRef) -> Panel:
    """Windows and labels of every asset for ``spec``'s feature set and lookback.

    Raises
    ------
    ValueError
        When ``spec`` was expanded for another span of history than ``ref`` caches.
    """
    if (spec.data_start, spec.data_end) != (ref.data_start, ref.data_end):
        raise ValueError(f"{spec.label} trains on data.start/end {spec.data_start}/"
                         f"{spec.data_end}, the cached bars span {ref.data_start}/{ref.data_end}")
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
    ts = np.concatenate(parts_ts)
    return Panel(
        X=np.concatenate(parts_X), y=np.concatenate(parts_y).astype(np.float32),
        groups=np.concatenate(parts_g), ts=ts, times=np.searchsorted(np.unique(ts), ts),
        symbols=ref.symbols, feature_names=names, warmup=warmup, last_bar=bars["ts"].max(),
    )


def _leading_incomplete_rows(matrix: np.ndarray) -> int:
    """Rows before the first one whose every feature is finite (all of them if none is)."""
    complete = np.isfinite(matrix).all(axis=1)
    return int(np.argmax(complete)) if complete.any() else len(matrix)


def _subset(panel: Panel, scaler: Normaliser, rows: np.ndarray) -> SupervisedData:
    return SupervisedData(X=scaler.transform(panel.X[rows]), y=panel.y[rows],
                          groups=panel.groups[rows], times=panel.times[rows])


@dataclass
class FoldResult:
    """One fold's fitted model and its out-of-sample scores."""

    model: Model
    scaler: Normaliser
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
    scaler = _scaler_of(spec, panel, train)
    train_data = _subset(panel, scaler, train)
    started = time.perf_counter()
    model = build_model(spec.arch, _config(spec, panel, spec.hparams)).fit(
        train_data, _subset(panel, scaler, valid) if valid.any() else None)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    scored_data = _subset(panel, scaler, scored)
    scores = model.predict(scored_data.X, scored_data.groups, scored_data.times)[test[scored]]
    predict_seconds = time.perf_counter() - started
    return FoldResult(model, scaler, test, scores, _signal_scale(model, train_data), fit_seconds,
                      predict_seconds, int(scored.sum()))


def _scaler_of(spec: RunSpec, panel: Panel, rows: np.ndarray) -> Normaliser:
    """The spec's normaliser fitted on the training ``rows``' last bars only."""
    return fit_normaliser(spec.normaliser, panel.X[rows][:, -1, :])


def _config(spec: RunSpec, panel: Panel, hparams: dict[str, Any]) -> ModelConfig:
    """The model's config for ``spec``'s panel with ``hparams``."""
    return ModelConfig(hparams=hparams, feature_names=panel.feature_names,
                       lookback=spec.lookback, seed=spec.seed)


def _signal_scale(model: Model, train_data: SupervisedData) -> float:
    """Positions are scores in units of the model's own spread on its training rows."""
    return float(np.std(model.predict(train_data.X, train_data.groups, train_data.times))) or 1.0


@dataclass
class Refit:
    """The model refit on all history: what the registry serves."""

    model: Model
    scaler: Normaliser
    signal_scale: float
    budget: dict[str, int]
    """The overrides of the spec's hyperparameters it trained with (the folds' median)."""
    rows: np.ndarray
    """Mask of the panel's windows it trained on."""
    fit_seconds: float


def _refit(spec: RunSpec, panel: Panel, positions_of: np.ndarray,
           fold_budgets: list[dict[str, int]]) -> Refit:
    """Fit ``spec`` on every labelled window, for the folds' median training budget.

    With ``max_train_bars`` the folds fit on at most that many recent positions, and so
    does the refit: the last ones of the timeline. There is no validation block: the budget
    stands in for the early stopping it would have driven.
    """
    max_train = spec.evaluation.max_train_bars
    rows = (positions_of >= positions_of.max() + 1 - max_train if max_train is not None
            else np.ones(len(positions_of), dtype=bool))
    budget = median_budget(fold_budgets)
    scaler = _scaler_of(spec, panel, rows)
    train_data = _subset(panel, scaler, rows)
    started = time.perf_counter()
    model = build_model(spec.arch, _config(spec, panel, {**spec.hparams, **budget})).fit(
        train_data, None)
    fit_seconds = time.perf_counter() - started
    return Refit(model, scaler, _signal_scale(model, train_data), budget, rows, fit_seconds)


def median_budget(budgets: list[dict[str, int]]) -> dict[str, int]:
    """Each override's median over the folds that report it, rounded (half to even), at
    least 1: ``[{"n_estimators": 40}, {"n_estimators": 55}, {"n_estimators": 61}]`` gives
    ``{"n_estimators": 55}``."""
    keys = dict.fromkeys(key for budget in budgets for key in budget)
    return {key: max(1, round(float(np.median([b[key] for b in budgets if key in b]))))
            for key in keys}


def _save_model(spec: RunSpec, panel: Panel, refit: Refit, walk_forward: dict[str, Any],
                directory: Path, ref: DatasetRef) -> None:
    """Write the refit model, its scaler and ``meta.json`` to ``directory``.

    ``meta.json`` keeps values typed (the feature parameters stay ints and floats): it is what
    ``Predictor`` reads to build the feature set from raw bars the way training did. Its
    ``refit`` says what the saved model trained on (``trained_through``: the last window's
    decision bar; ``label_known_through``: the data's last bar, where that window's label
    ends) and for how long (``budget``, ``fit_seconds``); ``walk_forward``, what the reported
    figures cover (the last fold's model was trained through ``last_fold_trained_through``;
    ``fold_budgets``, what each fold's early stopping kept; ``metrics``, the out-of-sample
    performance over all folds), so the checkpoint carries its own record.
    """
    directory.mkdir(parents=True, exist_ok=True)
    refit.model.save(directory / "model")
    refit.scaler.save(directory / "scaler.json")
    meta = {"format": MODEL_META_FORMAT, "spec_id": spec.id, "model_name": spec.model_name,
            "arch": spec.arch, "lookback": spec.lookback, "feature_set": spec.feature_set,
            "feature_params": dict(spec.feature_params),
            "feature_names": list(panel.feature_names),
            "feature_warmup_bars": panel.warmup, "min_bars": panel.warmup + spec.lookback,
            "signal_scale": refit.signal_scale, "bar_columns": list(BAR_COLUMNS),
            "symbols": list(panel.symbols), "bar_frequency": ref.bar_frequency,
            "calendar": ref.calendar, "side_versions": dict(ref.side_versions),
            "refit": {"trained_through": _iso(panel.ts[refit.rows].max()),
                      "label_known_through": _iso(panel.last_bar),
                      "n_train_windows": int(refit.rows.sum()), "budget": refit.budget,
                      "fit_seconds": refit.fit_seconds},
            "walk_forward": walk_forward}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2))


def _iso(ts: datetime | np.datetime64) -> str:
    """ISO 8601 text of a (UTC-naive) bar time, to the second or finer as needed."""
    return np.datetime64(ts, "us").item().isoformat()


def evaluate_spec(spec: RunSpec, ref: DatasetRef, model_dir: Path | None, *,
                  on_fold: FoldHook | None = None, refit: bool = True) -> SpecOutcome:
    """Train and evaluate ``spec`` out of sample, then save it refit on all history.

    Parameters
    ----------
    spec, ref
        What to train, on which cached data.
    model_dir
        Where the refit model is saved (unused without ``refit``).
    on_fold
        Called after each fold (see :data:`FoldHook`); when it returns True the remaining
        folds are skipped and the outcome covers the folds done.
    refit
        Refit on all history and save the model; without it the outcome has status
        :data:`EVALUATED` and no model (:func:`refit_spec` can make it later).

    Returns
    -------
    SpecOutcome
        Status FINISHED (EVALUATED without ``refit``) with the walk-forward metrics,
        per-asset OOS rows and the portfolio return series, and the last bar the saved
        model's data reached.
    """
    panel = build_panel(spec, ref)
    timeline = np.unique(panel.ts)
    positions_of = panel.times
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
        if on_fold is not None and on_fold(fold.index, _running_metrics(oos_parts, ev.cost_bps,
                                                                     ref.periods_per_year)):
            break
    folds = folds[:len(results)]
    fold_budgets = [result.model.training_budget() for result in results]
    last = folds[-1]
    walk_forward = {"n_folds": len(folds), "last_test_end": _iso(timeline[last.test.max()]),
                    "last_fold_trained_through": _iso(
                        timeline[np.concatenate([last.train, last.valid]).max()]),
                    "fold_budgets": fold_budgets}
    oos = _costed(pl.concat(oos_parts), ev.cost_bps)
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
    walk_forward["metrics"] = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
    if refit:
        fitted = _refit(spec, panel, positions_of, fold_budgets)
        _save_model(spec, panel, fitted, walk_forward, model_dir, ref)
    return SpecOutcome(spec=spec, status="FINISHED" if refit else EVALUATED, metrics=metrics,
                       oos=oos.drop("held"), portfolio=portfolio,
                       model_dir=str(model_dir) if refit else None,
                       fold_metrics=_fold_metrics(oos, folds, results, periods_per_year),
                       bar_frequency=ref.bar_frequency,
                       trained_through=_iso(panel.last_bar) if refit else None,
                       walk_forward=walk_forward)


def refit_spec(spec: RunSpec, ref: DatasetRef, model_dir: Path,
               walk_forward: dict[str, Any]) -> str:
    """Refit ``spec`` on all history and save it, as :func:`evaluate_spec` does after its
    walk-forward, for an outcome evaluated earlier without the refit.

    Parameters
    ----------
    spec, ref
        The spec and the data it was evaluated on.
    model_dir
        Where the model is saved.
    walk_forward
        The evaluation's :attr:`SpecOutcome.walk_forward` (its ``fold_budgets`` set the
        refit's training budget; all of it goes into ``meta.json``).

    Returns
    -------
    str
        ISO time of the data's last bar (:attr:`SpecOutcome.trained_through`).
    """
    panel = build_panel(spec, ref)
    fitted = _refit(spec, panel, panel.times, walk_forward["fold_budgets"])
    _save_model(spec, panel, fitted, walk_forward, model_dir, ref)
    return _iso(panel.last_bar)


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


def _running_metrics(oos_parts: list[pl.DataFrame], cost_bps: float,
                     periods_per_year: float) -> dict[str, float]:
    """Trading metrics of the portfolio over the folds scored so far."""
    portfolio = _equal_weight(_costed(pl.concat(oos_parts), cost_bps), "strategy_return")
    return trading_metrics(portfolio["ret"].to_numpy(), periods_per_year)


def _costed(oos: pl.DataFrame, cost_bps: float) -> pl.DataFrame:
    """``oos`` sorted by (symbol, ts) with the strategy's and buy-and-hold's costed returns."""
    oos = oos.sort("symbol", "ts")
    return oos.with_columns(
        _costed_returns(oos, oos["position"], cost_bps).alias("strategy_return"),
        _costed_returns(oos, pl.Series(np.ones(oos.height)), cost_bps).alias("held"))


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
