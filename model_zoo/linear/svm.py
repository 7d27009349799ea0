"""Support vector regression on flattened windows: linear, or RBF through a Nystroem map.

Each window becomes one row of ``<feature>__lag<k>`` columns (:mod:`model_zoo.classical`).

Scale. An exact kernel SVR costs ``n^2`` to ``n^3`` in the number of windows, too much for
the factory's tens of thousands. ``kernel="linear"`` fits scikit-learn's ``LinearSVR``
(liblinear, linear in ``n``); ``kernel="rbf"`` first maps the rows through a Nystroem
approximation of the RBF kernel (``n_components`` landmark rows drawn with the seed) and
fits the same linear SVR on the mapped rows: ``n * n_components^2`` instead of ``n^3``.

Loss. ``loss="squared"`` (the default) charges the squared excess over the epsilon tube
(liblinear's L2-loss SVR objective, intercept regularised as liblinear does) and is solved
exactly by :func:`model_zoo.linear.solvers.squared_svr`, a generalised Newton method on the
Gram matrix: 4-8 iterations, 0.1-0.4 s a fold on 6,000-10,000 windows of 30 x 21 features
(1-2 s at 90 bars) where liblinear's own primal solver took 3-17 s (74 s at 90 bars) to a
looser tolerance. Its optimum is stored in the ``LinearSVR`` that would refit the same
objective, so saved files keep their form.
``loss="absolute"`` is the classic L1 epsilon-insensitive loss, more robust to outlying
returns, solved by liblinear in the dual by coordinate descent, which converges slowly on
noisy returns: on 6,700 windows of 90 x 9 features it stops at the ``max_iter`` cap (1,000
iterations, 5 s) without converging.

Units. The inputs are already standardised by the factory; the labels are raw forward
returns (about 0.01 a day, far less a minute), and SVR's ``epsilon`` and ``C`` are not
scale-free. The model therefore fits on labels centred and scaled by the training fold's
mean and standard deviation, and maps its predictions back to ``y``'s units with the same
two numbers (saved with the model): ``epsilon`` is in units of the training labels'
standard deviation, whatever the asset or bar frequency.

Threads. The fit runs BLAS on one thread (house rule: one thread per worker), whatever the
environment says: on a busy machine a multi-threaded BLAS made it several times slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.kernel_approximation import Nystroem
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVR
from threadpoolctl import threadpool_limits

from model_zoo.base import Capabilities, Model, ModelConfig, SupervisedData, check_windows
from model_zoo.classical import flatten_windows, load_estimator, save_estimator
from model_zoo.linear.solvers import squared_svr
from model_zoo.registry import (
    ARCHITECTURES,
    read_model_meta,
    resolve_hparams,
    write_model_meta,
)

KERNELS = ("linear", "rbf")
LOSSES = {"squared": "squared_epsilon_insensitive", "absolute": "epsilon_insensitive"}
"""Grid name of the loss -> scikit-learn's name."""


class SVMModel(Model):
    """Support vector regression of the forward return.

    Hyperparameters (grid names, scikit-learn meaning):
    ``l2`` (regularisation strength: ``C = 1 / l2``, default 10.0; liblinear sums the loss
    over the rows, so the same ``l2`` regularises less on more rows), ``epsilon``
    (half-width of the tube no loss is charged inside, in standard deviations of the
    training labels, default 0.1), ``loss`` (``"squared"``, the default, or
    ``"absolute"``: module docstring), ``kernel`` (``"linear"``, the default, or ``"rbf"``),
    ``n_components`` (Nystroem landmarks for ``"rbf"``, capped at the training rows,
    default 300), ``gamma`` (RBF width; 0.0, the default, means ``1 / n_columns``, which
    suits standardised inputs), ``max_iter`` (cap on the solver's iterations: Newton steps
    for the squared loss, liblinear's dual passes for the absolute one; default 1,000).
    ``valid`` is unused: nothing stops early, so the protocol's ``training_budget``
    (``{}``) holds.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["svm"].capabilities
    defaults: ClassVar[dict[str, Any]] = {
        "l2": 10.0,
        "epsilon": 0.1,
        "loss": "squared",
        "kernel": "linear",
        "n_components": 300,
        "gamma": 0.0,
        "max_iter": 1000,
    }
    ESTIMATOR_FILE: ClassVar[str] = "svr.skops"
    TRUSTED_TYPES: ClassVar[tuple[str, ...]] = (
        "builtins.dict",
        "builtins.list",
        "builtins.str",
        "builtins.tuple",
        "numpy.ndarray",
        "sklearn.kernel_approximation.Nystroem",
        "sklearn.pipeline.Pipeline",
        "sklearn.svm._classes.LinearSVR",
    )
    """Every type a saved model holds (either kernel); a file naming any other is refused."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.hparams = resolve_hparams(config.hparams, self.defaults, type(self).__name__)
        hp = self.hparams
        if hp["kernel"] not in KERNELS:
            raise ValueError(f"SVMModel: kernel must be one of {KERNELS}; got {hp['kernel']!r}")
        if hp["loss"] not in LOSSES:
            raise ValueError(f"SVMModel: loss must be one of {tuple(LOSSES)}; got {hp['loss']!r}")
        if hp["l2"] <= 0.0:
            raise ValueError("SVMModel: l2 must be > 0 (C = 1 / l2)")
        if hp["epsilon"] < 0.0 or hp["gamma"] < 0.0:
            raise ValueError("SVMModel: epsilon and gamma must be >= 0")
        if hp["n_components"] < 1 or hp["max_iter"] < 1:
            raise ValueError("SVMModel: n_components and max_iter must be >= 1")
        self.estimator: Pipeline | None = None
        self.y_mean = 0.0
        self.y_scale = 1.0

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Fit the SVR on ``train``'s standardised labels (``valid`` is unused)."""
        check_windows(train.X, "SVMModel: the training windows", self.capabilities.min_history)
        rows = flatten_windows(train.X, self.config, type(self).__name__)
        y = np.asarray(train.y, dtype=np.float64)
        self.y_mean = float(y.mean())
        spread = float(y.std())
        self.y_scale = spread if spread > 0.0 else 1.0
        with threadpool_limits(limits=1, user_api="blas"):  # one thread per worker
            self.estimator = self._fitted_pipeline(rows, (y - self.y_mean) / self.y_scale)
        return self

    def _fitted_pipeline(self, rows: np.ndarray, target: np.ndarray) -> Pipeline:
        """The (Nystroem map and) SVR fitted to the standardised ``target``."""
        hp = self.hparams
        steps: list[tuple[str, Any]] = []
        if hp["kernel"] == "rbf":
            gamma = hp["gamma"] if hp["gamma"] > 0.0 else 1.0 / rows.shape[1]
            nystroem = Nystroem(kernel="rbf", gamma=gamma,
                                n_components=min(hp["n_components"], len(rows)),
                                random_state=self.config.seed)
            rows = nystroem.fit_transform(rows)
            steps.append(("nystroem", nystroem))
        svr = LinearSVR(C=1.0 / hp["l2"], epsilon=hp["epsilon"], loss=LOSSES[hp["loss"]],
                        dual=hp["loss"] == "absolute", max_iter=hp["max_iter"],
                        random_state=self.config.seed)
        if hp["loss"] == "squared":
            solution = squared_svr(rows, target, svr.C, svr.epsilon, max_iter=hp["max_iter"])
            svr.coef_ = solution.coef
            svr.intercept_ = np.array([solution.intercept])
            svr.n_iter_ = solution.n_iter
            svr.n_features_in_ = rows.shape[1]
        else:
            svr.fit(rows, target)
        return Pipeline([*steps, ("svr", svr)])

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Predicted forward returns in ``y``'s units, ``(n,)`` float64."""
        if self.estimator is None:
            raise RuntimeError("SVMModel must be fitted or loaded before predict")
        check_windows(X, "SVMModel: the windows to predict")
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        rows = flatten_windows(X, self.config, type(self).__name__)
        scaled = np.asarray(self.estimator.predict(rows), dtype=np.float64)
        return self.y_mean + self.y_scale * scaled

    def save(self, directory: Path) -> None:
        """Write the estimator (skops), the label scaling and the config (``model.json``)."""
        if self.estimator is None:
            raise RuntimeError("SVMModel must be fitted before save")
        directory = write_model_meta(directory, self.config, self.hparams,
                                     y_mean=self.y_mean, y_scale=self.y_scale)
        save_estimator(self.estimator, directory / self.ESTIMATOR_FILE)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`, trusting only its own types."""
        config, meta = read_model_meta(directory)
        model = cls(config)
        model.estimator = load_estimator(Path(directory) / cls.ESTIMATOR_FILE,
                                         cls.TRUSTED_TYPES, Pipeline, cls.__name__)
        model.y_mean = float(meta["y_mean"])
        model.y_scale = float(meta["y_scale"])
        return model
