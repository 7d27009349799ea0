"""The classical models beyond the contract: safe skops files, hyperparameter meanings,
XGBoost's kept rounds, the SVM's units and the logistic regression's penalties."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import LinearSVR

from model_zoo.base import ModelConfig, SupervisedData
from model_zoo.classical import load_estimator, stored_type_names
from model_zoo.registry import build_model, get_model_class, load_model
from tests.contract.test_models import FEATURES, LOOKBACK, make_planted

SKOPS_MODELS = {
    "random_forest": [{"n_estimators": 10}, {"n_estimators": 10, "max_depth": 4,
                                             "subsample": 1.0, "max_features": 1.0}],
    "svm": [{}, {"loss": "absolute"}, {"kernel": "rbf", "n_components": 50}],
    "logistic_regression": [{}, {"l1": 1.0, "l2": 0.0}, {"l1": 1.0, "l2": 1.0},
                            {"l1": 0.0, "l2": 0.0}],
}


@pytest.fixture(scope="module")
def planted() -> dict[str, SupervisedData]:
    return make_planted()


def fitted(name: str, data: dict[str, SupervisedData], **hparams):
    config = ModelConfig(hparams=hparams, feature_names=FEATURES, lookback=LOOKBACK)
    return build_model(name, config).fit(data["train"], data["valid"])


def correlation(model, data: SupervisedData) -> float:
    return float(np.corrcoef(model.predict(data.X), data.y)[0, 1])


def skops_file(directory):
    (path,) = directory.glob("*.skops")
    return path


@pytest.mark.parametrize("name", sorted(SKOPS_MODELS))
def test_saved_files_hold_exactly_the_trusted_types(name, planted, tmp_path):
    """The trust list is the exact union of what the model writes: nothing more is
    trusted than some configuration needs, and every configuration loads."""
    held: set[str] = set()
    for number, hparams in enumerate(SKOPS_MODELS[name]):
        directory = tmp_path / str(number)
        model = fitted(name, planted, **hparams)
        model.save(directory)
        held |= stored_type_names(skops_file(directory))
        restored = load_model(name, directory)
        np.testing.assert_array_equal(restored.predict(planted["test"].X),
                                      model.predict(planted["test"].X))
    assert held == set(get_model_class(name).TRUSTED_TYPES)


def test_a_scikit_learn_estimator_the_model_never_writes_is_refused(planted, tmp_path):
    """skops trusts every scikit-learn estimator by default; the model's own list does not."""
    fitted("svm", planted).save(tmp_path)
    forest = RandomForestRegressor(n_estimators=2, random_state=0)
    forest.fit(planted["train"].X.reshape(len(planted["train"].X), -1), planted["train"].y)
    skops.io.dump(forest, skops_file(tmp_path))
    with pytest.raises(ValueError, match=r"never writes: \[.*RandomForestRegressor"):
        load_model("svm", tmp_path)


def test_a_file_naming_a_function_is_refused_before_anything_is_built(planted, tmp_path):
    fitted("svm", planted).save(tmp_path)
    pipeline = Pipeline([("call", FunctionTransformer(np.exp)), ("svr", LinearSVR())])
    skops.io.dump(pipeline, skops_file(tmp_path))
    with pytest.raises(ValueError, match="FunctionTransformer"):
        load_model("svm", tmp_path)


def test_an_allowed_type_in_the_wrong_place_is_refused(planted, tmp_path):
    model = fitted("svm", planted)
    model.save(tmp_path)
    skops.io.dump(model.estimator.named_steps["svr"], skops_file(tmp_path))
    with pytest.raises(ValueError, match="holds a LinearSVR, not a Pipeline"):
        load_model("svm", tmp_path)


def test_a_file_that_is_not_a_skops_archive_is_refused(tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(b"\x80\x04not a zip file")
    with pytest.raises(ValueError, match="is not a skops file"):
        load_estimator(path, ["numpy.ndarray"], LinearSVR, "SVMModel")


def test_xgboost_keeps_the_rounds_up_to_the_best_one(planted, tmp_path):
    model = fitted("xgboost", planted, n_estimators=200, early_stopping_rounds=10)
    kept = model.training_budget()["n_estimators"]
    assert 1 <= kept < 200
    assert model.booster.num_boosted_rounds() == kept
    unstopped = build_model("xgboost", ModelConfig(hparams={"n_estimators": 40},
                                                   feature_names=FEATURES, lookback=LOOKBACK))
    assert unstopped.fit(planted["train"]).training_budget() == {"n_estimators": 40}


@pytest.mark.parametrize("loss", ["squared", "absolute"])
def test_svm_predicts_in_the_units_of_the_labels(loss, planted):
    """Labels a hundred times larger give predictions a hundred times larger: epsilon and
    C act on standardised labels, so the fit itself does not change."""
    train = planted["train"]
    scaled = {"train": SupervisedData(X=train.X, y=train.y * 100, groups=train.groups),
              "valid": None}
    test = planted["test"].X
    small = fitted("svm", planted, loss=loss).predict(test)
    large = fitted("svm", scaled, loss=loss).predict(test)
    np.testing.assert_allclose(large, 100 * small, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("hparams", [{"kernel": "rbf"}, {"loss": "absolute"}])
def test_svm_variants_learn_the_planted_signal(hparams, planted):
    assert correlation(fitted("svm", planted, **hparams), planted["test"]) > 0.1


@pytest.mark.parametrize(("l1", "l2", "solver", "l1_ratio", "C"), [
    (0.0, 2.0, "newton-cholesky", 0.0, 0.5),
    (4.0, 0.0, "saga", 1.0, 0.25),
    (1.0, 3.0, "saga", 0.25, 0.25),
    (0.0, 0.0, "lbfgs", 0.0, np.inf),
])
def test_logistic_penalty_follows_l1_and_l2(l1, l2, solver, l1_ratio, C):
    config = ModelConfig(hparams={"l1": l1, "l2": l2}, feature_names=FEATURES, lookback=LOOKBACK)
    classifier = build_model("logistic_regression", config)._classifier()
    assert (classifier.solver, classifier.l1_ratio, classifier.C) == (solver, l1_ratio, C)


@pytest.mark.parametrize("hparams", [{"l1": 1.0, "l2": 0.0}, {"l1": 1.0, "l2": 1.0}])
def test_logistic_regression_with_an_l1_part_learns_the_signal(hparams, planted):
    assert correlation(fitted("logistic_regression", planted, **hparams),
                       planted["test"]) > 0.1


def test_logistic_regression_needs_both_signs(planted):
    train = planted["train"]
    all_up = SupervisedData(X=train.X[:100], y=np.abs(train.y[:100]) + 1e-4)
    model = build_model("logistic_regression",
                        ModelConfig(hparams={}, feature_names=FEATURES, lookback=LOOKBACK))
    with pytest.raises(ValueError, match="all 100 training labels are up moves"):
        model.fit(all_up)


@pytest.mark.parametrize(("name", "hparams", "message"), [
    ("svm", {"kernel": "poly"}, "kernel must be one of"),
    ("svm", {"loss": "huber"}, "loss must be one of"),
    ("svm", {"l2": 0.0}, r"C = 1 / l2"),
    ("random_forest", {"max_depth": 0}, "max_depth"),
    ("random_forest", {"subsample": 1.5}, "fractions"),
    ("logistic_regression", {"l1": -1.0}, "must be >= 0"),
    ("xgboost", {"early_stopping_rounds": 0}, "early_stopping_rounds"),
])
def test_out_of_range_hyperparameters_are_refused(name, hparams, message):
    config = ModelConfig(hparams=hparams, feature_names=FEATURES, lookback=LOOKBACK)
    with pytest.raises(ValueError, match=message):
        build_model(name, config)


@pytest.mark.parametrize("name", ["random_forest", "xgboost", "svm", "logistic_regression"])
def test_windows_of_the_wrong_shape_are_refused(name, planted):
    model = fitted(name, planted)
    with pytest.raises(ValueError, match=r"expects X of shape \(n, 14, 2\)"):
        model.predict(planted["test"].X[:, 1:, :])
