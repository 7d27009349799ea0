"""The registered model is the spec refit on all history after the walk-forward evaluation.

Real training (``fit.evaluate_spec``) on a feature cache in a temporary folder; no MLflow.
The bars are two assets of pure noise until a regime starts inside the last test block,
where the return two bars ahead follows the current one (``r_t = 0.8 r_{t-2} + e_t``, so
the label of bar ``t`` is about ``0.8 * ret_1``): only a model trained through the end of
the data can know it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from factory.config import load_config
from factory.evaluation.metrics import prediction_metrics, trading_metrics
from factory.grid import RunSpec, expand
from factory.training.datasets import DatasetRef, cache_features
from factory.training.fit import LABEL_HORIZON, SpecOutcome, evaluate_spec, median_budget
from factory.training.predictor import Predictor
from model_zoo.lightning import TorchNetModel
from model_zoo.trees.lightgbm_model import LightGBMModel

SYMBOLS = ("AAA", "BBB")
N_BARS = 1500
REGIME_START = 1380
"""First bar of the regime; the last of three test blocks over 30% of the bars starts
before it, every earlier one ends before it (checked in the test that relies on it)."""
START = datetime(2015, 1, 1)


def _bars(symbol: str, n_bars: int, regime_start: int, seed: int) -> pl.DataFrame:
    """Daily OHLCV bars: i.i.d. returns before ``regime_start``, then ``0.8 r_{t-2} + e_t``."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 0.01, n_bars)
    returns = shocks.copy()
    for t in range(max(regime_start, 2), n_bars):
        returns[t] = 0.8 * returns[t - 2] + shocks[t]
    close = 100.0 * np.exp(np.cumsum(returns))
    previous = np.concatenate(([100.0], close[:-1]))
    open_ = previous * np.exp(rng.normal(0.0, 0.002, n_bars))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.003, n_bars)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.003, n_bars)))
    return pl.DataFrame({
        "symbol": symbol, "ts": [START + timedelta(days=i) for i in range(n_bars)],
        "open": open_, "high": high, "low": low, "close": close,
        "volume": rng.uniform(1e5, 2e5, n_bars),
    }).with_columns(pl.col("ts").cast(pl.Datetime("us")))


def _spec(arch: str, **hparams) -> RunSpec:
    """The smoke profile's first ``arch`` cell (the shortest lookback it keeps), with three
    folds over 30% of the data."""
    spec = next(s for s in expand(load_config("smoke"), SYMBOLS).specs if s.arch == arch)
    evaluation = spec.evaluation.model_copy(update={"n_folds": 3})
    return spec.model_copy(update={"evaluation": evaluation,
                                   "hparams": {**spec.hparams, **hparams}})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[DatasetRef, pl.DataFrame, Path]:
    root = tmp_path_factory.mktemp("refit")
    bars = pl.concat([_bars(symbol, N_BARS, REGIME_START, seed)
                      for seed, symbol in enumerate(SYMBOLS)])
    ref = DatasetRef(root / "cache", 1, SYMBOLS, 365.0, "1d")
    ref.bars_path().parent.mkdir(parents=True)
    bars.write_parquet(ref.bars_path())
    return ref, bars, root


class FitSpy:
    """Records every model ``fit`` builds during a run (the folds', then the refit's)."""

    def __init__(self, monkeypatch, model_class: type) -> None:
        self.fits: list[tuple[object, bool, int]] = []
        original = model_class.fit

        def fit(model, train, valid=None):
            self.fits.append((model, valid is not None, len(train.y)))
            return original(model, train, valid)

        monkeypatch.setattr(model_class, "fit", fit)


def _evaluate(data, spec: RunSpec, name: str) -> SpecOutcome:
    ref, _, root = data
    cache_features(ref, spec.feature_set, spec.feature_params)
    return evaluate_spec(spec, ref, root / "runs" / name)


def _meta(outcome: SpecOutcome) -> dict:
    return json.loads((Path(outcome.model_dir) / "meta.json").read_text())


@pytest.fixture(scope="module")
def lightgbm_outcome(data) -> SpecOutcome:
    return _evaluate(data, _spec("lightgbm"), "lightgbm")


def test_saved_model_is_trained_through_the_last_labelled_bar(lightgbm_outcome):
    meta = _meta(lightgbm_outcome)
    last_bar = START + timedelta(days=N_BARS - 1)
    assert meta["format"] == 4
    assert meta["refit"]["label_known_through"] == last_bar.isoformat()
    assert lightgbm_outcome.trained_through == last_bar.isoformat()
    assert meta["refit"]["trained_through"] == (
        last_bar - timedelta(days=LABEL_HORIZON)).isoformat()
    walk_forward = meta["walk_forward"]
    assert walk_forward["n_folds"] == 3
    assert walk_forward["last_test_end"] == meta["refit"]["trained_through"]
    assert walk_forward["last_fold_trained_through"] < meta["refit"]["trained_through"]
    # Every labelled window of both assets: bars after the warm-up and the first window,
    # less the last LABEL_HORIZON bars whose label is not known yet.
    per_asset = N_BARS - meta["min_bars"] + 1 - LABEL_HORIZON
    assert meta["refit"]["n_train_windows"] == len(SYMBOLS) * per_asset
    assert meta["refit"]["budget"] == median_budget(walk_forward["fold_budgets"])


def test_the_refit_learns_a_regime_the_last_fold_never_saw(lightgbm_outcome):
    """Served from raw bars, the saved model predicts the regime on bars it never saw; the
    last fold's model (what was saved before) shows nothing of it out of sample."""
    meta = _meta(lightgbm_outcome)
    regime = (START + timedelta(days=REGIME_START)).isoformat()
    assert meta["walk_forward"]["last_fold_trained_through"] < regime
    oos = lightgbm_outcome.oos
    assert oos.filter(pl.col("fold") < 2)["ts"].max() < START + timedelta(days=REGIME_START)
    in_regime = oos.filter(pl.col("ts") >= START + timedelta(days=REGIME_START))
    assert set(in_regime["fold"].to_list()) == {2} and in_regime.height > 200
    last_fold = float(np.corrcoef(in_regime["score"], in_regime["label"])[0, 1])

    fresh = _bars("CCC", 600, regime_start=0, seed=99)
    scores = Predictor(Path(lightgbm_outcome.model_dir)).predict_bars(fresh)["score"].to_numpy()
    close = fresh["close"].to_numpy()
    labels = np.full(len(close), np.nan)
    labels[:-LABEL_HORIZON] = close[LABEL_HORIZON:] / close[1 : 1 - LABEL_HORIZON] - 1.0
    known = np.isfinite(scores) & np.isfinite(labels)
    refit = float(np.corrcoef(scores[known], labels[known])[0, 1])
    assert refit > 0.3, f"refit model: correlation {refit:.3f} on the regime"
    assert last_fold < 0.2, f"last fold model: correlation {last_fold:.3f} on the regime"


def test_served_scores_are_the_refit_models_with_its_own_signal_scale(data, lightgbm_outcome):
    """From raw bars, the served model scores every labelled window as the refit did in
    training: their spread is exactly the saved signal scale (raw_ohlcv has finite memory)."""
    _, bars, _ = data
    predictor = Predictor(Path(lightgbm_outcome.model_dir))
    served = pl.concat([bars.select("symbol", "ts"), predictor.predict_bars(bars)],
                       how="horizontal")
    trained_through = datetime.fromisoformat(predictor.meta["refit"]["trained_through"])
    trained = served.filter(pl.col("score").is_not_nan() & (pl.col("ts") <= trained_through))
    assert trained.height == predictor.meta["refit"]["n_train_windows"]
    assert float(np.std(trained["score"].to_numpy())) == pytest.approx(
        predictor.meta["signal_scale"], rel=1e-9)


def test_reported_figures_are_the_walk_forward_ones(data, lightgbm_outcome):
    """Metrics come from the folds' OOS series, which the refit model did not produce."""
    outcome = lightgbm_outcome
    oos = outcome.oos
    portfolio = oos.group_by("ts").agg(pl.col("strategy_return").mean()).sort("ts")
    expected = trading_metrics(portfolio["strategy_return"].to_numpy(),
                               outcome.metrics["periods_per_year"])
    expected |= prediction_metrics(oos["score"].to_numpy(), oos["label"].to_numpy())
    for key, value in expected.items():
        assert outcome.metrics[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key
    assert sum(f["n_oos_bars"] for f in outcome.fold_metrics) == outcome.metrics["n_obs"]
    checkpoint = Predictor(Path(outcome.model_dir)).meta["walk_forward"]["metrics"]
    assert checkpoint["sharpe"] == outcome.metrics["sharpe"]  # the checkpoint's own record
    _, bars, _ = data
    served = pl.concat([bars.select("symbol", "ts"),
                        Predictor(Path(outcome.model_dir)).predict_bars(bars)], how="horizontal")
    last = oos.filter(pl.col("fold") == 2).join(served, on=["symbol", "ts"], suffix="_served")
    assert not np.allclose(last["score"], last["score_served"])


@pytest.mark.parametrize(("model_class", "arch", "hparams", "budget_key"), [
    (LightGBMModel, "lightgbm", {"n_estimators": 300, "early_stopping_rounds": 10},
     "n_estimators"),
    (TorchNetModel, "lstm", {"max_epochs": 6, "patience": 1}, "max_epochs"),
])
def test_refit_trains_for_the_folds_median_budget(data, monkeypatch, model_class, arch,
                                                  hparams, budget_key):
    """The folds stop early on validation; the refit, with none, trains exactly as long as
    their median, on more windows than any fold."""
    spy = FitSpy(monkeypatch, model_class)
    outcome = _evaluate(data, _spec(arch, **hparams), f"{arch}-budget")
    *folds, (refit_model, refit_has_valid, refit_rows) = spy.fits
    assert len(folds) == 3 and all(has_valid for _, has_valid, _ in folds)
    assert not refit_has_valid and refit_rows > max(rows for _, _, rows in folds)
    fold_budgets = [model.training_budget()[budget_key] for model, _, _ in folds]
    assert min(fold_budgets) < hparams[budget_key], "no fold stopped early"
    median = max(1, round(float(np.median(fold_budgets))))
    meta = _meta(outcome)
    assert meta["refit"]["budget"] == {budget_key: median}
    assert refit_model.training_budget() == {budget_key: median}
    assert json.loads((Path(outcome.model_dir) / "model" / "model.json").read_text())[
        "config"]["hparams"][budget_key] == median


def test_with_a_training_window_cap_the_refit_keeps_the_most_recent_windows(data):
    """``max_train_bars`` bounds what every fold fits on, and so the refit: the last ones."""
    spec = _spec("lightgbm")
    capped = spec.model_copy(update={"evaluation": spec.evaluation.model_copy(
        update={"max_train_bars": 500})})
    meta = _meta(_evaluate(data, capped, "lightgbm-capped"))
    assert meta["refit"]["n_train_windows"] == len(SYMBOLS) * 500
    assert meta["refit"]["trained_through"] == (
        START + timedelta(days=N_BARS - 1 - LABEL_HORIZON)).isoformat()
