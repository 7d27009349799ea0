"""Logistic regression of the forward return's sign, mapped to a return forecast.

Each window becomes one row of ``<feature>__lag<k>`` columns (:mod:`model_zoo.classical`)
and its class is whether the label is an up move (``y > 0``; a zero return counts as not
up).

Regularisation. The shared names ``l1`` and ``l2`` are the penalty weights of the
objective ``sum(log loss) + l1 * |w|_1 + l2 / 2 * |w|_2^2``, which is scikit-learn's with
``C = 1 / (l1 + l2)`` and ``l1_ratio = l1 / (l1 + l2)``: only ``l2`` > 0 is the ridge
penalty, only ``l1`` > 0 the lasso and both the elastic net, neither no penalty at all.

Solvers. Flattened windows are wide and collinear (lag ``k`` of a feature is close to lag
``k + 1``), where first-order solvers crawl: lbfgs took 500-900 iterations on the ridge and
stopped short of the optimum. The ridge is therefore fitted by scikit-learn's own Newton
solver (``newton-cholesky``, to a mean-loss gradient of :data:`TOL`). For an L1 part
scikit-learn offers only saga and (pure L1) liblinear, and neither converges here: on the
demo bars (30 bars of the technical set, 4 fits a configuration) saga took 132 s and
liblinear 125 s and both stopped at their 1,000-iteration cap. With an L1 part the
objective is therefore minimised by :func:`model_zoo.linear.solvers.penalised_logistic`
(proximal Newton: 1-3 s a configuration) to the same :data:`TOL`, and its optimum is stored
in the saga ``LogisticRegression`` that would refit that objective, so saved files keep
their form. Without any penalty lbfgs fits it (the Hessian may be singular). The fit runs
BLAS on one thread (house rule: one thread per worker) whatever the environment says: on a
busy machine a multi-threaded BLAS made it several times slower.

Units. The factory compares every model's prediction with the forward return, so the
up-probability ``p`` becomes a forecast in ``y``'s units through a least-squares line
``y ~ intercept + slope * (p - 0.5)`` fitted on the training rows, as
:mod:`model_zoo.econometric.arima` calibrates its forecasts: the forecast's sign follows
``p`` when the training labels are centred, and its scale is what ``p`` explains of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from model_zoo.base import (
    Capabilities,
    Model,
    ModelConfig,
    SupervisedData,
    check_windows,
    least_squares_line,
)
from model_zoo.classical import flatten_windows, load_estimator, save_estimator
from model_zoo.linear.solvers import penalised_logistic
from model_zoo.registry import (
    ARCHITECTURES,
    read_model_meta,
    resolve_hparams,
    write_model_meta,
)

TOL = 1e-6
"""Stop when the largest entry of the mean log loss's (sub)gradient is at most this."""


class LogisticRegressionModel(Model):
    """Probability of an up move, calibrated to a forward-return forecast.

    Hyperparameters (grid names): ``l2`` (default 1.0) and ``l1`` (default 0.0), penalty
    weights as in the module docstring; ``max_iter`` (solver iterations, default 1,000).
    ``valid`` is unused: nothing stops early, so the protocol's ``training_budget``
    (``{}``) holds.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["logistic_regression"].capabilities
    defaults: ClassVar[dict[str, Any]] = {"l1": 0.0, "l2": 1.0, "max_iter": 1000}
    CLASSIFIER_FILE: ClassVar[str] = "classifier.skops"
    TRUSTED_TYPES: ClassVar[tuple[str, ...]] = (
        "builtins.dict",
        "builtins.list",
        "builtins.str",
        "numpy.ndarray",
        "sklearn.linear_model._logistic.LogisticRegression",
    )
    """Every type a saved classifier holds; a file naming any other is refused."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.hparams = resolve_hparams(config.hparams, self.defaults, type(self).__name__)
        if self.hparams["l1"] < 0.0 or self.hparams["l2"] < 0.0:
            raise ValueError("LogisticRegressionModel: l1 and l2 must be >= 0")
        if self.hparams["max_iter"] < 1:
            raise ValueError("LogisticRegressionModel: max_iter must be >= 1")
        self.classifier: LogisticRegression | None = None
        self.intercept = 0.0
        self.slope = 0.0

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Fit the classifier on the signs of ``train.y``, then the calibration line."""
        check_windows(train.X, "LogisticRegressionModel: the training windows",
                      self.capabilities.min_history)
        y = np.asarray(train.y, dtype=np.float64)
        up = y > 0.0
        if up.all() or not up.any():
            raise ValueError(
                f"LogisticRegressionModel: all {len(y)} training labels are "
                f"{'up' if up.any() else 'down or flat'} moves; it needs both to learn a sign"
            )
        rows = flatten_windows(train.X, self.config, type(self).__name__)
        classifier = self._classifier()
        with threadpool_limits(limits=1, user_api="blas"):  # one thread per worker
            if classifier.solver == "saga":
                self.classifier = self._fitted_by_newton(classifier, rows, up)
            else:
                self.classifier = classifier.fit(rows, up)
        self._calibrate(self._centred_probability(rows), y)
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Forecasts in ``y``'s units, ``(n,)`` float64: the calibrated up-probability."""
        if self.classifier is None:
            raise RuntimeError("LogisticRegressionModel must be fitted or loaded before predict")
        check_windows(X, "LogisticRegressionModel: the windows to predict")
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        rows = flatten_windows(X, self.config, type(self).__name__)
        return self.intercept + self.slope * self._centred_probability(rows)

    def save(self, directory: Path) -> None:
        """Write the classifier (skops), the calibration and the config (``model.json``)."""
        if self.classifier is None:
            raise RuntimeError("LogisticRegressionModel must be fitted before save")
        directory = write_model_meta(directory, self.config, self.hparams,
                                     intercept=self.intercept, slope=self.slope)
        save_estimator(self.classifier, directory / self.CLASSIFIER_FILE)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`, trusting only its own types."""
        config, meta = read_model_meta(directory)
        model = cls(config)
        model.classifier = load_estimator(Path(directory) / cls.CLASSIFIER_FILE,
                                          cls.TRUSTED_TYPES, LogisticRegression, cls.__name__)
        model.intercept = float(meta["intercept"])
        model.slope = float(meta["slope"])
        return model

    def _classifier(self) -> LogisticRegression:
        """The scikit-learn classifier for the ``l1`` and ``l2`` weights (module docstring)."""
        l1, l2 = self.hparams["l1"], self.hparams["l2"]
        total = l1 + l2
        l1_ratio = l1 / total if total > 0.0 else 0.0
        if l1_ratio > 0.0:
            solver, tol = "saga", TOL
        elif total > 0.0:
            solver, tol = "newton-cholesky", TOL
        else:
            solver, tol = "lbfgs", 1e-4
        return LogisticRegression(
            C=1.0 / total if total > 0.0 else np.inf,
            l1_ratio=l1_ratio,
            solver=solver,
            tol=tol,
            max_iter=self.hparams["max_iter"],
            random_state=self.config.seed,
        )

    def _fitted_by_newton(self, classifier: LogisticRegression, rows: np.ndarray,
                          up: np.ndarray) -> LogisticRegression:
        """``classifier`` holding the optimum of its objective (module docstring), found by
        :func:`~model_zoo.linear.solvers.penalised_logistic`."""
        solution = penalised_logistic(rows, up, self.hparams["l1"], self.hparams["l2"],
                                      max_iter=self.hparams["max_iter"], tol=TOL)
        classifier.classes_ = np.array([False, True])
        classifier.coef_ = solution.coef[np.newaxis, :]
        classifier.intercept_ = np.array([solution.intercept])
        classifier.n_iter_ = np.array([solution.n_iter], dtype=np.int32)
        classifier.n_features_in_ = rows.shape[1]
        return classifier

    def _centred_probability(self, rows: np.ndarray) -> np.ndarray:
        """``P(up) - 0.5`` for each row, float64."""
        up_column = list(self.classifier.classes_).index(True)
        return np.asarray(self.classifier.predict_proba(rows)[:, up_column],
                          dtype=np.float64) - 0.5

    def _calibrate(self, centred: np.ndarray, y: np.ndarray) -> None:
        """Least-squares ``y ~ intercept + slope * centred`` on the training rows."""
        self.intercept, self.slope = least_squares_line(centred, y)
