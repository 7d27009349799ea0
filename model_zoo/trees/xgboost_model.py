"""XGBoost gradient-boosted trees on flattened windows.

Each window becomes one row of ``<feature>__lag<k>`` columns (:mod:`model_zoo.classical`).
Training uses the ``hist`` tree method on one thread (house rule: one thread per worker)
from the config's seed, so it is deterministic. With a validation block it stops early on
the block's RMSE and keeps only the rounds up to the best one;
:meth:`XGBoostModel.training_budget` reports them, so the refit on all history boosts as
long without a validation block. The booster is saved in XGBoost's own JSON model format:
data, not code (house rule 11).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import xgboost as xgb

from model_zoo.base import Capabilities, Model, ModelConfig, SupervisedData, check_windows
from model_zoo.classical import column_names, flatten_windows
from model_zoo.registry import (
    ARCHITECTURES,
    read_model_meta,
    resolve_hparams,
    write_model_meta,
)


class XGBoostModel(Model):
    """XGBoost regressor of the forward return (squared error).

    Hyperparameters (grid names, XGBoost meaning):
    ``n_estimators`` (boosting rounds, the cap when early stopping; default 300),
    ``learning_rate`` (eta, 0.05), ``max_depth`` (3), ``min_child_weight`` (rows per leaf
    under squared error, 50), ``subsample`` (0.8), ``colsample_bytree`` (0.8), ``l2``
    (reg_lambda, 1.0), ``l1`` (reg_alpha, 0.0: it thresholds sums of residuals, so its scale
    is that of the returns), ``early_stopping_rounds`` (30).
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["xgboost"].capabilities
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "max_depth": 3,
        "min_child_weight": 50.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "l2": 1.0,
        "l1": 0.0,
        "early_stopping_rounds": 30,
    }
    BOOSTER_FILE: ClassVar[str] = "booster.json"

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.hparams = resolve_hparams(config.hparams, self.defaults, type(self).__name__)
        if self.hparams["n_estimators"] < 1 or self.hparams["early_stopping_rounds"] < 1:
            raise ValueError("XGBoostModel: n_estimators and early_stopping_rounds must be >= 1")
        self.booster: xgb.Booster | None = None

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Boost on ``train``; with ``valid``, keep the rounds up to the lowest loss."""
        check_windows(train.X, "XGBoostModel: the training windows",
                      self.capabilities.min_history)
        hp = self.hparams
        params = {
            "objective": "reg:squarederror",
            "eval_metric": "rmse",
            "tree_method": "hist",
            "learning_rate": hp["learning_rate"],
            "max_depth": hp["max_depth"],
            "min_child_weight": hp["min_child_weight"],
            "subsample": hp["subsample"],
            "colsample_bytree": hp["colsample_bytree"],
            "reg_lambda": hp["l2"],
            "reg_alpha": hp["l1"],
            "nthread": 1,
            "seed": self.config.seed,
            "verbosity": 0,
        }
        train_set = self._matrix(train.X, train.y)
        evals, stopping_rounds = [], None
        if valid is not None and len(valid.y) > 0:
            evals.append((self._matrix(valid.X, valid.y), "valid"))
            stopping_rounds = hp["early_stopping_rounds"]
        booster = xgb.train(params, train_set, num_boost_round=hp["n_estimators"], evals=evals,
                            early_stopping_rounds=stopping_rounds, verbose_eval=False)
        if stopping_rounds is not None:
            # A slice holds only the kept rounds, and no early-stopping attributes.
            booster = booster[: booster.best_iteration + 1]
        self.booster = booster
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Predicted forward returns, ``(n,)`` float64 (``groups`` and ``times`` unused)."""
        if self.booster is None:
            raise RuntimeError("XGBoostModel must be fitted or loaded before predict")
        check_windows(X, "XGBoostModel: the windows to predict")
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.booster.predict(self._matrix(X)), dtype=np.float64)

    def save(self, directory: Path) -> None:
        """Write the booster (XGBoost JSON model) and the config (``model.json``)."""
        if self.booster is None:
            raise RuntimeError("XGBoostModel must be fitted before save")
        directory = write_model_meta(directory, self.config, self.hparams,
                                     rounds=self.booster.num_boosted_rounds())
        self.booster.save_model(str(directory / self.BOOSTER_FILE))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`."""
        config, _meta = read_model_meta(directory)
        model = cls(config)
        booster = xgb.Booster(params={"nthread": 1})
        booster.load_model(str(Path(directory) / cls.BOOSTER_FILE))
        model.booster = booster
        return model

    def training_budget(self) -> dict[str, int]:
        """``{"n_estimators": rounds kept}``: up to the best round when stopped early."""
        if self.booster is None:
            raise RuntimeError("XGBoostModel must be fitted or loaded before training_budget")
        return {"n_estimators": int(self.booster.num_boosted_rounds())}

    def _matrix(self, X: np.ndarray, y: np.ndarray | None = None) -> xgb.DMatrix:
        rows = flatten_windows(X, self.config, type(self).__name__)
        label = None if y is None else np.asarray(y, dtype=np.float64)
        return xgb.DMatrix(rows, label=label, feature_names=column_names(self.config),
                           nthread=1)
