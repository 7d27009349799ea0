"""The saved model serves raw bars: its own features, the refit's scaler, the evaluation's
position rule, and the scores of the model refit on all history after the walk-forward folds.

Real training (``fit.evaluate_spec``) on a feature cache in a temporary folder; no MLflow.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from factory.config import load_config
from factory.data.sources import synthetic_bars
from factory.evaluation.signals import positions_from_scores
from factory.grid import RunSpec, expand
from factory.training.datasets import DatasetRef, cache_features
from factory.training.fit import SpecOutcome, evaluate_spec
from factory.training.predictor import Predictor

SYMBOLS = ("AAA", "BBB")


def _specs() -> dict[str, RunSpec]:
    """lightgbm on each feature set, and ARIMA(1, 0, 1): a moving-average term, whose
    filter state depends on all the history before a bar."""
    config = load_config("smoke")
    by_arch = {s.arch: s for s in expand(config, SYMBOLS).specs if s.lookback == 7}
    technical = config.features["technical"].params
    return {
        "lightgbm-raw_ohlcv": by_arch["lightgbm"],
        "lightgbm-technical": by_arch["lightgbm"].model_copy(
            update={"feature_set": "technical", "feature_params": technical}),
        "arima-1-0-1": by_arch["arima"].model_copy(update={"hparams": {"order": [1, 0, 1]}}),
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[pl.DataFrame, dict[str, SpecOutcome]]:
    """Planted-signal bars of two assets, and one evaluated outcome per spec of `_specs`."""
    root = tmp_path_factory.mktemp("predictor")
    bars = synthetic_bars(symbols=SYMBOLS, n_bars=400, seed=3, signal=0.5)
    ref = DatasetRef(root / "cache", 1, SYMBOLS, 365.0, "1d")
    ref.bars_path().parent.mkdir(parents=True)
    bars.write_parquet(ref.bars_path())
    outcomes = {}
    for key, spec in _specs().items():
        cache_features(ref, spec.feature_set, spec.feature_params)
        outcomes[key] = evaluate_spec(spec, ref, root / "runs" / key)
    return bars, outcomes


def _served(outcome: SpecOutcome, bars: pl.DataFrame) -> pl.DataFrame:
    scored = Predictor(Path(outcome.model_dir)).predict_bars(bars)
    return pl.concat([bars.select("symbol", "ts"), scored], how="horizontal")


@pytest.mark.parametrize("key", list(_specs()))
def test_served_scores_are_the_refit_models_on_its_training_windows(trained, key):
    """The saved model is the refit on all history: served over the windows it trained on,
    its scores have exactly the spread its signal scale was taken from."""
    bars, outcomes = trained
    predictor = Predictor(Path(outcomes[key].model_dir))
    served = _served(outcomes[key], bars)
    through = datetime.fromisoformat(predictor.meta["refit"]["trained_through"])
    rows = served.filter(pl.col("score").is_not_nan() & (pl.col("ts") <= through))
    assert rows.height == predictor.meta["refit"]["n_train_windows"]
    assert float(np.std(rows["score"].to_numpy())) == pytest.approx(
        predictor.meta["signal_scale"], rel=1e-9)
    np.testing.assert_array_equal(rows["position"], positions_from_scores(
        rows["score"].to_numpy(), predictor.meta["signal_scale"]))


def test_positions_follow_the_evaluation_rule_nan_only_in_the_warm_up(trained):
    bars, outcomes = trained
    for outcome in outcomes.values():
        predictor = Predictor(Path(outcome.model_dir))
        served = _served(outcome, bars)
        for (_,), asset in served.group_by("symbol"):
            warm_up = predictor.min_bars - 1
            assert asset["score"][:warm_up].is_nan().all()
            assert asset["position"][:warm_up].is_nan().all()
            scored = asset[warm_up:]
            assert scored["score"].is_finite().all() and scored["position"].is_finite().all()
            assert scored["position"].abs().max() <= 1.0
            np.testing.assert_array_equal(scored["position"], positions_from_scores(
                scored["score"].to_numpy(), predictor.meta["signal_scale"]))


def test_meta_json_keeps_feature_parameters_typed_with_the_warm_up(trained):
    _, outcomes = trained
    raw = json.loads((Path(outcomes["lightgbm-raw_ohlcv"].model_dir) / "meta.json").read_text())
    assert raw["feature_params"] == {"volume_window": 20}
    assert type(raw["feature_params"]["volume_window"]) is int
    assert raw["feature_warmup_bars"] == 19  # a 20-bar rolling mean of volume
    assert raw["min_bars"] == 19 + raw["lookback"]
    assert raw["bar_frequency"] == "1d" and raw["symbols"] == list(SYMBOLS)
    technical = json.loads(
        (Path(outcomes["lightgbm-technical"].model_dir) / "meta.json").read_text())
    assert technical["feature_params"] == load_config("smoke").features["technical"].params
    configured = load_config("smoke").features["technical"].params
    assert {k: type(v) for k, v in technical["feature_params"].items()} == {
        k: type(v) for k, v in configured.items()}
    assert type(configured["rsi_period"]) is int and type(configured["bb_k"]) is float
    assert technical["feature_warmup_bars"] > raw["feature_warmup_bars"]


def test_pandas_or_polars_in_any_row_order_and_one_asset_without_symbol(trained):
    bars, outcomes = trained
    predictor = Predictor(Path(outcomes["arima-1-0-1"].model_dir))
    expected = predictor.predict_bars(bars)
    shuffled = np.random.default_rng(0).permutation(bars.height)
    from_pandas = predictor.predict_bars(bars[shuffled].to_pandas())
    np.testing.assert_array_equal(from_pandas["score"], expected["score"].to_numpy()[shuffled])
    one = bars.filter(pl.col("symbol") == "BBB")
    alone = predictor.predict_bars(one.drop("symbol"))
    np.testing.assert_array_equal(alone["score"],
                                  expected.filter(bars["symbol"] == "BBB")["score"])


def test_too_few_bars_a_missing_column_or_a_repeated_time_is_a_clear_error(trained):
    bars, outcomes = trained
    predictor = Predictor(Path(outcomes["lightgbm-raw_ohlcv"].model_dir))
    enough = bars.filter(pl.col("symbol") == "AAA").head(predictor.min_bars)
    assert predictor.predict_bars(enough)["score"].is_finite().sum() == 1
    with pytest.raises(ValueError, match=rf"symbol 'AAA': {predictor.min_bars - 1} bars.*"
                                         rf"at least {predictor.min_bars}"):
        predictor.predict_bars(enough.head(predictor.min_bars - 1))
    with pytest.raises(ValueError, match=r"lack the columns \['volume'\]"):
        predictor.predict_bars(bars.drop("volume"))
    with pytest.raises(ValueError, match="share a ts"):
        predictor.predict_bars(bars.vstack(bars.head(1)))


def test_each_fold_reports_its_own_oos_metrics(trained):
    _, outcomes = trained
    outcome = outcomes["lightgbm-raw_ohlcv"]
    folds = outcome.fold_metrics
    assert [f["fold"] for f in folds] == list(range(outcome.spec.evaluation.n_folds))
    assert sum(f["n_oos_bars"] for f in folds) == outcome.metrics["n_obs"]
    assert all(np.isfinite(f["sharpe"]) and f["signal_scale"] > 0 for f in folds)
    assert outcome.bar_frequency == "1d"
