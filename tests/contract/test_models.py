"""Contract every architecture in the registry must honour.

Parametrised over ``ARCHITECTURES``, so a new entry is tested without touching this file
(add it to ``FAST_HPARAMS`` only if its defaults are too slow for a 2-core CPU).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_zoo.base import TARGET_FEATURE, Model, ModelConfig, SupervisedData, default_times
from model_zoo.registry import (
    ARCHITECTURES,
    build_model,
    capabilities,
    get_model_class,
    load_model,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(ARCHITECTURES)
FEATURES = (TARGET_FEATURE, "noise_feature")
LOOKBACK = 14
_NET_FAST = {"max_epochs": 8, "learning_rate": 5e-3, "batch_size": 128, "patience": 3}
FAST_HPARAMS: dict[str, dict] = {
    # One line per architecture (each owner edits only its own line).
    "lstm": {**_NET_FAST, "hidden_size": 16},
    "bilstm": {**_NET_FAST, "hidden_size": 16},
    "gru_lstm": {**_NET_FAST, "hidden_size": 16},
    "lstm_attention": {**_NET_FAST, "hidden_size": 16},
    "transformer": {**_NET_FAST, "hidden_size": 16, "num_layers": 1},
    "time2vec_transformer": {**_NET_FAST, "hidden_size": 16, "num_layers": 1},
    "tcn": {**_NET_FAST, "hidden_size": 16},
    "tft": {**_NET_FAST, "hidden_size": 16},
    "cnn1d": {**_NET_FAST, "hidden_size": 16},
    "ensemble": {**_NET_FAST, "hidden_size": 16},
    "resnet_mlp": {**_NET_FAST, "hidden_size": 32},
    "tabnet": {**_NET_FAST, "hidden_size": 16},
    "gnn": {**_NET_FAST, "hidden_size": 16},
    "dae_lgbm": {"max_epochs": 8, "n_estimators": 150},
    "random_forest": {"n_estimators": 100},
    "xgboost": {"n_estimators": 150},
    "lightgbm": {"n_estimators": 150},
    "svm": {},
    "logistic_regression": {},
    "arima": {"order": [1, 0, 0]},
    "garch": {},
    "holt_winters": {},
    "var": {},
    "dqn": {"total_timesteps": 10_000},
    "ppo": {"total_timesteps": 10_000},
    "a2c": {"total_timesteps": 10_000},
}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Nets set one thread themselves while training; this also covers anything else."""
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_planted(seed: int = 7, n_bars: int = 4000, n_groups: int = 2, phi: float = 0.5):
    """AR(1) returns with a pure-noise second feature, windowed, split and standardised.

    The label of the window ending at bar ``t`` is ``r_{t+2}``; the best predictor is
    ``phi**2 * r_t`` (directional accuracy about 0.58, correlation 0.25). Each group is
    split 50/20/30 in time order with a two-window embargo between splits.
    """
    rng = np.random.default_rng(seed)
    splits: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
        "train": [],
        "valid": [],
        "test": [],
    }
    for group in range(n_groups):
        shocks = rng.normal(0.0, 0.01, n_bars)
        returns = np.zeros(n_bars)
        for t in range(1, n_bars):
            returns[t] = phi * returns[t - 1] + shocks[t]
        features = np.column_stack([returns, rng.normal(size=n_bars)])
        ends = np.arange(LOOKBACK - 1, n_bars - 2)
        X = np.lib.stride_tricks.sliding_window_view(features, LOOKBACK, axis=0)
        X = X.transpose(0, 2, 1)[: len(ends)]
        y = returns[ends + 2]
        cut_valid, cut_test = int(0.5 * len(y)), int(0.7 * len(y))
        bounds = {
            "train": (0, cut_valid),
            "valid": (cut_valid + 2, cut_test),
            "test": (cut_test + 2, len(y)),
        }
        for split, (start, stop) in bounds.items():
            rows = slice(start, stop)
            splits[split].append((X[rows], y[rows], np.full(stop - start, group)))
    joined = {
        split: tuple(np.concatenate(parts) for parts in zip(*pieces, strict=True))
        for split, pieces in splits.items()
    }
    train_bars = joined["train"][0][:, -1, :]
    mean, std = train_bars.mean(axis=0), train_bars.std(axis=0)
    return {
        split: SupervisedData(
            X=((X - mean) / std).astype(np.float32), y=y.astype(np.float32), groups=groups
        )
        for split, (X, y, groups) in joined.items()
    }


@pytest.fixture(scope="module")
def planted() -> dict[str, SupervisedData]:
    return make_planted()


def config_for(name: str, seed: int = 0) -> ModelConfig:
    return ModelConfig(
        hparams=FAST_HPARAMS.get(name, {}), feature_names=FEATURES, lookback=LOOKBACK, seed=seed
    )


def fit(name: str, data: dict[str, SupervisedData], seed: int = 0) -> Model:
    return build_model(name, config_for(name, seed)).fit(data["train"], data["valid"])


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, planted) -> tuple[str, Model]:
    return request.param, fit(request.param, planted)


def test_learns_planted_signal(fitted, planted):
    name, model = fitted
    test = planted["test"]
    pred = model.predict(test.X, test.groups)
    accuracy = float(np.mean(np.sign(pred) == np.sign(test.y)))
    correlation = float(np.corrcoef(pred, test.y)[0, 1])
    assert accuracy > 0.55, f"{name}: directional accuracy {accuracy:.3f}"
    assert correlation > 0.1, f"{name}: correlation {correlation:.3f}"


def test_predict_shape_dtype_finite(fitted, planted):
    name, model = fitted
    test = planted["test"]
    pred = model.predict(test.X, test.groups)
    assert pred.dtype == np.float64
    assert pred.shape == (len(test.y),)
    assert np.all(np.isfinite(pred))


def test_no_look_ahead_across_rows(fitted, planted):
    """Predictions for the first rows do not change when later rows are appended.

    For a panel model "the first rows" are every asset's rows of the first 300 times: the
    other assets' windows at the same time are known then and are its input by design."""
    name, model = fitted
    test = planted["test"]
    times = default_times(test.groups)
    rows = np.flatnonzero(times < 300) if capabilities(name).panel else np.arange(300)
    full = model.predict(test.X, test.groups, times)[rows]
    head = model.predict(test.X[rows], test.groups[rows], times[rows])
    np.testing.assert_allclose(head, full, rtol=1e-5, atol=1e-9, err_msg=name)


def test_save_load_round_trip(fitted, planted, tmp_path):
    name, model = fitted
    test = planted["test"]
    model.save(tmp_path / name)
    restored = load_model(name, tmp_path / name)
    np.testing.assert_array_equal(
        restored.predict(test.X, test.groups), model.predict(test.X, test.groups), err_msg=name
    )


def test_same_seed_same_predictions(fitted, planted):
    name, first = fitted
    test = planted["test"]
    second = fit(name, planted, seed=0)
    a, b = first.predict(test.X, test.groups), second.predict(test.X, test.groups)
    if capabilities(name).family == "net":
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    else:
        np.testing.assert_array_equal(a, b)


def test_training_budget_names_the_models_own_hyperparameters(fitted):
    """Each override is a positive count under a hyperparameter name the model accepts."""
    name, model = fitted
    budget = model.training_budget()
    assert isinstance(budget, dict), name
    assert all(type(v) is int and v >= 1 for v in budget.values()), (name, budget)
    build_model(name, _with_budget(name, budget))  # unknown names would raise ValueError


def _with_budget(name: str, budget: dict[str, int]) -> ModelConfig:
    return ModelConfig(hparams={**FAST_HPARAMS.get(name, {}), **budget},
                       feature_names=FEATURES, lookback=LOOKBACK)


def test_training_budget_reproduces_itself_without_validation(fitted, planted):
    """Refit with the budget and ``valid=None`` (as on all history): the model trains for
    exactly that budget, nothing stops it earlier, and it still learns the signal."""
    name, model = fitted
    budget = model.training_budget()
    refit = build_model(name, _with_budget(name, budget)).fit(planted["train"])
    assert refit.training_budget() == budget, name
    test = planted["test"]
    correlation = float(np.corrcoef(refit.predict(test.X, test.groups), test.y)[0, 1])
    assert correlation > 0.1, f"{name}: correlation {correlation:.3f}"


def test_training_budget_survives_save_and_load(fitted, tmp_path):
    name, model = fitted
    model.save(tmp_path / name)
    assert load_model(name, tmp_path / name).training_budget() == model.training_budget()


def test_early_stopping_models_report_the_kept_rounds(fitted):
    """LightGBM reports the rounds it kept and a net its best epoch, both within the cap;
    a model that does not stop early reports nothing."""
    name, model = fitted
    budget = model.training_budget()
    if name == "lightgbm":
        assert 1 <= budget["n_estimators"] == model.booster.num_trees() <= 150
    elif capabilities(name).family == "net":
        assert 1 <= budget["max_epochs"] <= model.training.max_epochs
    elif name == "arima":
        assert budget == {}


@pytest.mark.parametrize("name", NAMES)
def test_class_subclasses_the_protocol(name):
    """Explicitly, so that it inherits the protocol's defaults (``training_budget``)."""
    assert Model in get_model_class(name).__mro__


@pytest.mark.parametrize("name", NAMES)
def test_class_shares_registry_capabilities(name):
    assert get_model_class(name).capabilities is capabilities(name)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_hparam_rejected(name):
    config = ModelConfig(hparams={"no_such_hparam": 1}, feature_names=FEATURES, lookback=LOOKBACK)
    with pytest.raises(ValueError, match="no_such_hparam"):
        build_model(name, config)


def test_unknown_architecture_lists_known_names():
    with pytest.raises(KeyError) as info:
        capabilities("no_such_model")
    for name in NAMES:
        assert name in str(info.value)
    with pytest.raises(KeyError):
        get_model_class("no_such_model")


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_capabilities_import_nothing_heavy():
    code = (
        "import sys\n"
        "from model_zoo.registry import ARCHITECTURES, capabilities\n"
        "[capabilities(name) for name in ARCHITECTURES]\n"
        "heavy = [m for m in ('torch', 'lightning', 'lightgbm', 'statsmodels') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from model_zoo.registry import get_model_class\n"
        "get_model_class('lightgbm'); get_model_class('arima')\n"
        "assert 'torch' not in sys.modules, 'tree/econometric models imported torch'\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr


def test_missing_dependency_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['lightgbm'] = None\n"
        "from model_zoo.registry import get_model_class\n"
        "get_model_class('lightgbm')\n"
    )
    result = _run_python(code)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "pip install model-factory[trees]" in result.stderr


def test_arima_matches_statsmodels_two_step_forecast(planted):
    """At any bar t, the prediction is the calibrated ``forecast(2)[-1]`` of the series to t."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    model = fit("arima", planted)
    test = planted["test"]
    rows = np.flatnonzero(test.groups == 1)[:250]
    X = test.X[rows]
    column = X[:, :, FEATURES.index(TARGET_FEATURE)].astype(np.float64)
    series = np.concatenate([column[0], column[1:, -1]])
    pred = model.predict(X)
    for last_row in (0, 100, len(rows) - 1):
        end = LOOKBACK + last_row
        results = SARIMAX(series[:end], order=model.order, trend=model.hparams["trend"]).filter(
            model.params
        )
        expected = model.intercept + model.slope * results.forecast(2)[-1]
        assert pred[last_row] == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_nan_windows_are_refused_with_the_rows(fitted, planted):
    name, model = fitted
    X = planted["test"].X[:50].copy()
    X[7, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite values, e\.g\. rows \[7\]"):
        model.predict(X, planted["test"].groups[:50])
    with pytest.raises(ValueError, match="NaN or infinite"):
        SupervisedData(X=X, y=planted["test"].y[:50])


@pytest.mark.parametrize("name", NAMES)
def test_too_short_a_history_is_refused_clearly(name, planted):
    rows = max(capabilities(name).min_history - 1, 0)
    train = planted["train"]
    short = SupervisedData(X=train.X[:rows], y=train.y[:rows], groups=train.groups[:rows])
    with pytest.raises(ValueError, match="too short a history"):
        build_model(name, config_for(name)).fit(short)


SHUFFLE_BASELINE = ("lstm", "lightgbm", "svm", "arima", "ppo")
"""One architecture per family: the same model on shuffled training labels."""


@pytest.mark.parametrize("name", SHUFFLE_BASELINE)
def test_the_signal_beats_a_shuffled_label_baseline(name, planted):
    """Fitted on labels shuffled in time, a model learns nothing about them: its
    out-of-sample R^2 stays near 0 (a network's random start or ARIMA's own dynamics can
    still correlate with the label, but not with the right scale). On the real labels the
    R^2 clears the baseline's by 0.02, about ten standard errors of a null R^2 on 2,400
    test rows: luck does not give that."""
    test = planted["test"]
    rng = np.random.default_rng(0)
    shuffled = {split: SupervisedData(X=data.X, y=rng.permutation(data.y), groups=data.groups)
                for split, data in planted.items()}
    real = _r_squared(fit(name, planted).predict(test.X, test.groups), test.y)
    baseline = _r_squared(fit(name, shuffled).predict(test.X, test.groups), test.y)
    assert real > baseline + 0.02, (name, real, baseline)


def _r_squared(pred: np.ndarray, y: np.ndarray) -> float:
    """Out-of-sample R^2 against the test labels' own mean."""
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def test_a_nets_checkpoint_keeps_its_optimiser_state(fitted, tmp_path):
    """Weights, optimiser state, config and target scaling: enough to predict or resume."""
    name, model = fitted
    if capabilities(name).family != "net":
        pytest.skip(f"{name} has no optimiser")
    model.save(tmp_path / name)
    restored = load_model(name, tmp_path / name).optimizer_state
    assert restored["state"], name  # Adam's moments, one entry per parameter tensor
    assert restored["param_groups"][0]["lr"] == model.optimizer_state["param_groups"][0]["lr"]

