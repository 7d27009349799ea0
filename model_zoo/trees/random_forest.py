"""Random forest regressor (scikit-learn) on flattened windows.

Each window becomes one row of ``<feature>__lag<k>`` columns (:mod:`model_zoo.classical`).
The forest grows on one thread (house rule: one thread per worker) from the config's seed,
so the same seed gives the same trees. It does not stop early: ``valid`` is unused and the
protocol's default :meth:`~model_zoo.base.Model.training_budget` (``{}``) holds. The fitted
forest is saved with skops and loads only if it holds exactly the types listed in
:data:`RandomForestModel.TRUSTED_TYPES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from model_zoo.base import Capabilities, Model, ModelConfig, SupervisedData, check_windows
from model_zoo.classical import flatten_windows, load_estimator, save_estimator
from model_zoo.registry import (
    ARCHITECTURES,
    read_model_meta,
    resolve_hparams,
    write_model_meta,
)


class RandomForestModel(Model):
    """Random forest regressor of the forward return.

    Hyperparameters (grid names, scikit-learn meaning):
    ``n_estimators`` (trees, default 100), ``max_depth`` (-1: no limit, the default, as in
    LightGBM), ``min_samples_leaf`` (default 50: returns are mostly noise, small leaves fit
    it), ``max_features`` (fraction of the flattened columns tried at each split, in
    ``(0, 1]``, default 0.33), ``subsample`` (fraction of the training rows in each tree's
    bootstrap sample, scikit-learn's ``max_samples``, in ``(0, 1]``, default 0.5: it halves
    the cost and decorrelates the trees at little loss).
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["random_forest"].capabilities
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 100,
        "max_depth": -1,
        "min_samples_leaf": 50,
        "max_features": 0.33,
        "subsample": 0.5,
    }
    FOREST_FILE: ClassVar[str] = "forest.skops"
    TRUSTED_TYPES: ClassVar[tuple[str, ...]] = (
        "builtins.dict",
        "builtins.list",
        "builtins.str",
        "builtins.tuple",
        "numpy.ndarray",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree",
    )
    """Every type a saved forest holds; a file naming any other is refused."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.hparams = resolve_hparams(config.hparams, self.defaults, type(self).__name__)
        hp = self.hparams
        if hp["n_estimators"] < 1 or hp["min_samples_leaf"] < 1:
            raise ValueError("RandomForestModel: n_estimators and min_samples_leaf must be >= 1")
        if hp["max_depth"] == 0 or hp["max_depth"] < -1:
            raise ValueError("RandomForestModel: max_depth must be -1 (no limit) or >= 1")
        if not (0.0 < hp["max_features"] <= 1.0 and 0.0 < hp["subsample"] <= 1.0):
            raise ValueError("RandomForestModel: max_features and subsample are fractions "
                             "in (0, 1]")
        self.forest: RandomForestRegressor | None = None

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Grow the forest on ``train`` (``valid`` is unused: nothing stops early)."""
        check_windows(train.X, "RandomForestModel: the training windows",
                      self.capabilities.min_history)
        hp = self.hparams
        rows = flatten_windows(train.X, self.config, type(self).__name__)
        bootstrap_rows = max(1, round(hp["subsample"] * len(rows)))
        forest = RandomForestRegressor(
            n_estimators=hp["n_estimators"],
            max_depth=None if hp["max_depth"] == -1 else hp["max_depth"],
            min_samples_leaf=hp["min_samples_leaf"],
            max_features=hp["max_features"],
            max_samples=None if hp["subsample"] == 1.0 else bootstrap_rows,
            n_jobs=1,
            random_state=self.config.seed,
        )
        self.forest = forest.fit(rows, np.asarray(train.y, dtype=np.float64))
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Predicted forward returns, ``(n,)`` float64 (``groups`` and ``times`` unused)."""
        if self.forest is None:
            raise RuntimeError("RandomForestModel must be fitted or loaded before predict")
        check_windows(X, "RandomForestModel: the windows to predict")
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        rows = flatten_windows(X, self.config, type(self).__name__)
        return np.asarray(self.forest.predict(rows), dtype=np.float64)

    def save(self, directory: Path) -> None:
        """Write the forest (skops) and the config (``model.json``)."""
        if self.forest is None:
            raise RuntimeError("RandomForestModel must be fitted before save")
        directory = write_model_meta(directory, self.config, self.hparams)
        save_estimator(self.forest, directory / self.FOREST_FILE)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`, trusting only its own types."""
        config, _meta = read_model_meta(directory)
        model = cls(config)
        model.forest = load_estimator(Path(directory) / cls.FOREST_FILE, cls.TRUSTED_TYPES,
                                      RandomForestRegressor, cls.__name__)
        return model
