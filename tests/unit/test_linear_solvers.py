"""The linear models' Newton solvers reach the optimum scikit-learn's own solvers reach.

Each model keeps its objective and only changes how it is minimised
(:mod:`model_zoo.linear.solvers`), so on a seeded problem the new solver's coefficients must
agree with those of scikit-learn's solver for the same objective run to a tight tolerance.
The windows are flattened from a persistent AR(1) feature, so neighbouring columns are
collinear, as in the factory's windows. Files written with the previous solvers (estimators
scikit-learn fitted itself) must still load and predict the same.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVR
from threadpoolctl import threadpool_info, threadpool_limits

from model_zoo.base import ModelConfig, SupervisedData
from model_zoo.linear import logistic_regression, solvers, svm
from model_zoo.linear.solvers import penalised_logistic, squared_svr
from model_zoo.registry import build_model, load_model

LOOKBACK, FEATURES = 6, ("slow", "fast", "noise")
COEF_TOL = 1e-4
"""Largest allowed coefficient difference, relative to the largest coefficient."""


@pytest.fixture(scope="module")
def windows() -> SupervisedData:
    """600 windows of 6 bars x 3 features (18 collinear columns) and a planted label."""
    rng = np.random.default_rng(11)
    n_bars = 600 + LOOKBACK
    slow = np.zeros(n_bars)
    for t in range(1, n_bars):
        slow[t] = 0.9 * slow[t - 1] + rng.normal()
    series = np.column_stack([slow / slow.std(), rng.normal(size=n_bars),
                              rng.normal(size=n_bars)])
    X = np.lib.stride_tricks.sliding_window_view(series, LOOKBACK, axis=0).transpose(0, 2, 1)
    X = np.ascontiguousarray(X[:600], dtype=np.float32)
    y = 0.3 * X[:, -1, 0] - 0.2 * X[:, -2, 1] + rng.normal(size=600)
    return SupervisedData(X=X, y=(0.01 * y).astype(np.float32))


def rows_of(data: SupervisedData) -> np.ndarray:
    return data.X.reshape(len(data.X), -1)


def fitted(name: str, data: SupervisedData, **hparams):
    config = ModelConfig(hparams=hparams, feature_names=FEATURES, lookback=LOOKBACK, seed=3)
    return build_model(name, config).fit(data)


def assert_same_coefficients(new: np.ndarray, reference: np.ndarray) -> None:
    new, reference = np.ravel(new), np.ravel(reference)
    scale = np.abs(reference).max()
    assert scale > 0.0
    np.testing.assert_allclose(new, reference, rtol=0.0, atol=COEF_TOL * scale)


def standardised(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return (y - y.mean()) / y.std()


@pytest.mark.parametrize("l2", [10.0, 1.0, 100.0])
def test_svm_reaches_liblinears_optimum(windows, l2):
    """The squared-loss SVR the model stores is liblinear's primal optimum (run to 1e-10)."""
    svr = fitted("svm", windows, l2=l2).estimator.named_steps["svr"]
    reference = LinearSVR(C=1.0 / l2, epsilon=0.1, loss="squared_epsilon_insensitive",
                          dual=False, tol=1e-10, max_iter=100_000)
    reference.fit(rows_of(windows), standardised(windows.y))
    assert_same_coefficients(svr.coef_, reference.coef_)
    assert abs(svr.intercept_[0] - reference.intercept_[0]) <= COEF_TOL
    assert 1 <= svr.n_iter_ <= 20


def test_svm_rbf_solves_on_the_nystroem_features(windows):
    model = fitted("svm", windows, kernel="rbf", n_components=40)
    nystroem, svr = model.estimator.named_steps["nystroem"], model.estimator.named_steps["svr"]
    mapped = nystroem.transform(rows_of(windows))
    reference = LinearSVR(C=0.1, epsilon=0.1, loss="squared_epsilon_insensitive", dual=False,
                          tol=1e-10, max_iter=100_000).fit(mapped, standardised(windows.y))
    assert_same_coefficients(svr.coef_, reference.coef_)


def test_logistic_ridge_reaches_the_lbfgs_optimum(windows):
    """newton-cholesky lands where lbfgs does when lbfgs is run to convergence."""
    classifier = fitted("logistic_regression", windows, l2=1.0).classifier
    assert classifier.solver == "newton-cholesky"
    reference = LogisticRegression(C=1.0, solver="lbfgs", tol=1e-12, max_iter=100_000)
    reference.fit(rows_of(windows).astype(np.float64), windows.y > 0)
    assert_same_coefficients(classifier.coef_, reference.coef_)
    assert abs(classifier.intercept_[0] - reference.intercept_[0]) <= COEF_TOL


@pytest.mark.parametrize(("l1", "l2"), [(1.0, 0.0), (0.5, 0.5), (10.0, 0.0), (5.0, 50.0)])
def test_logistic_with_an_l1_part_reaches_the_saga_optimum(windows, l1, l2):
    """The proximal Newton optimum is saga's (run to 1e-10): same weights, same zeros."""
    classifier = fitted("logistic_regression", windows, l1=l1, l2=l2).classifier
    assert classifier.solver == "saga"
    total = l1 + l2
    reference = LogisticRegression(C=1.0 / total, l1_ratio=l1 / total, solver="saga",
                                   tol=1e-10, max_iter=200_000, random_state=0)
    reference.fit(rows_of(windows).astype(np.float64), windows.y > 0)
    assert_same_coefficients(classifier.coef_, reference.coef_)
    assert abs(classifier.intercept_[0] - reference.intercept_[0]) <= COEF_TOL
    tiny = COEF_TOL * np.abs(reference.coef_).max()
    assert np.array_equal(classifier.coef_ == 0.0, np.abs(reference.coef_) <= tiny)
    probability = classifier.predict_proba(rows_of(windows))[:, 1]
    np.testing.assert_allclose(
        probability, expit(rows_of(windows) @ classifier.coef_[0] + classifier.intercept_[0]),
        rtol=1e-6)


def test_penalised_logistic_never_ends_above_saga(windows):
    """Objective value check, independent of the coefficients' tolerance."""
    rows, up = rows_of(windows).astype(np.float64), windows.y > 0

    def objective(coef: np.ndarray, intercept: float) -> float:
        margin = rows @ coef + intercept
        return float(np.logaddexp(0.0, -np.where(up, 1.0, -1.0) * margin).sum()
                     + 2.0 * np.abs(coef).sum() + 0.5 * coef @ coef)

    solution = penalised_logistic(rows, up, l1=2.0, l2=1.0)
    reference = LogisticRegression(C=1 / 3, l1_ratio=2 / 3, solver="saga", tol=1e-10,
                                   max_iter=200_000, random_state=0).fit(rows, up)
    assert solution.converged
    assert (objective(solution.coef, solution.intercept)
            <= objective(reference.coef_[0], reference.intercept_[0]) + 1e-8)


def test_the_solvers_warn_when_max_iter_stops_them(windows):
    rows, y = rows_of(windows), standardised(windows.y)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        assert not penalised_logistic(rows, y > 0, l1=1.0, l2=0.0, max_iter=1).converged
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        assert not squared_svr(rows, y, C=10.0, epsilon=0.1, max_iter=1).converged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert squared_svr(rows, y, C=10.0, epsilon=0.1).converged
    with pytest.raises(ValueError, match="needs l1 > 0"):
        penalised_logistic(rows, y > 0, l1=0.0, l2=1.0)


def test_float32_curvature_is_the_float64_one_to_single_precision(windows):
    rows = rows_of(windows)
    X = np.column_stack([rows.astype(np.float64), np.ones(len(rows))])
    weights = np.linspace(0.1, 0.25, len(rows))
    exact = X.T @ (X * weights[:, None])
    np.testing.assert_allclose(solvers._gram(rows, X, weights), exact,
                               rtol=0.0, atol=1e-5 * np.abs(exact).max())
    np.testing.assert_array_equal(solvers._gram(X[:, :-1], X, weights)[-1], X.T @ weights)


@pytest.mark.parametrize(("name", "module", "solver", "hparams"), [
    ("svm", svm, "squared_svr", {}),
    ("logistic_regression", logistic_regression, "penalised_logistic", {"l1": 1.0}),
])
def test_the_solvers_run_blas_on_one_thread(windows, monkeypatch, name, module, solver,
                                            hparams):
    """House rule: one thread per worker, even where the environment allows more."""
    seen: list[int] = []
    original = getattr(module, solver)

    def spy(*args, **kwargs):
        seen.extend(pool["num_threads"] for pool in threadpool_info()
                    if pool["user_api"] == "blas")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, solver, spy)
    with threadpool_limits(limits=2, user_api="blas"):
        fitted(name, windows, **hparams)
    assert seen and set(seen) == {1}


def test_files_written_with_the_previous_solvers_still_load(windows, tmp_path):
    """The old code saved estimators scikit-learn fitted (liblinear's LinearSVR, saga's and
    lbfgs's LogisticRegression) under the same types: they load and predict as before."""
    rows, y = rows_of(windows), windows.y
    svm = fitted("svm", windows)
    svm.estimator = Pipeline([("svr", LinearSVR(C=0.1, epsilon=0.1, dual=False,
                                                loss="squared_epsilon_insensitive",
                                                random_state=3).fit(rows, standardised(y)))])
    svm.save(tmp_path / "svm")
    np.testing.assert_array_equal(load_model("svm", tmp_path / "svm").predict(windows.X),
                                  svm.predict(windows.X))
    for number, (solver, l1_ratio) in enumerate([("saga", 1.0), ("lbfgs", 0.0)]):
        logistic = fitted("logistic_regression", windows, l1=l1_ratio, l2=1.0 - l1_ratio)
        logistic.classifier = LogisticRegression(C=1.0, l1_ratio=l1_ratio, solver=solver,
                                                 max_iter=1000, random_state=3).fit(rows, y > 0)
        logistic.save(tmp_path / str(number))
        restored = load_model("logistic_regression", tmp_path / str(number))
        np.testing.assert_array_equal(restored.predict(windows.X), logistic.predict(windows.X))
