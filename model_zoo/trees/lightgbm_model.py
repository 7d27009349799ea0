"""LightGBM gradient-boosted trees on flattened windows.

Each window ``(lookback, n_features)`` becomes one row of ``lookback * n_features``
columns named ``<feature>__lag<k>`` (``k = 0`` is the window's last bar). Training is
single-threaded and deterministic (house rule: one thread per worker), and stops early on
the validation fold's L2 loss when one is given; :meth:`LightGBMModel.training_budget` then
reports the rounds kept, so the refit on all history boosts as long without a validation block.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Self

import lightgbm as lgb
import numpy as np

from model_zoo.base import Capabilities, Model, ModelConfig, SupervisedData, check_windows
from model_zoo.registry import (
    ARCHITECTURES,
    read_model_meta,
    resolve_hparams,
    write_model_meta,
)


class LightGBMModel(Model):
    """LightGBM regressor of the forward return.

    Hyperparameters (grid names, LightGBM meaning):
    ``num_leaves``, ``learning_rate``, ``n_estimators`` (boosting rounds, the cap when early
    stopping), ``min_child_samples`` (min_data_in_leaf), ``feature_fraction``,
    ``subsample`` (bagging_fraction, redrawn every ``subsample_freq`` rounds), ``max_depth``,
    ``l2`` (lambda_l2), ``l1`` (lambda_l1), ``early_stopping_rounds``.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["lightgbm"].capabilities
    defaults: ClassVar[dict[str, Any]] = {
        "num_leaves": 15,
        "learning_rate": 0.05,
        "n_estimators": 300,
        "min_child_samples": 50,
        "feature_fraction": 0.8,
        "subsample": 0.8,
        "subsample_freq": 1,
        "max_depth": -1,
        "l2": 1.0,
        "l1": 0.0,
        "early_stopping_rounds": 30,
    }
    BOOSTER_FILE: ClassVar[str] = "booster.txt"

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.hparams = resolve_hparams(config.hparams, self.defaults, type(self).__name__)
        self.booster: lgb.Booster | None = None

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Boost on ``train``; with ``valid``, keep the round count with the lowest loss."""
        check_windows(train.X, "LightGBMModel: the training windows",
                      self.capabilities.min_history)
        hp = self.hparams
        params = {
            "objective": "regression",
            "num_leaves": hp["num_leaves"],
            "learning_rate": hp["learning_rate"],
            "min_data_in_leaf": hp["min_child_samples"],
            "feature_fraction": hp["feature_fraction"],
            "bagging_fraction": hp["subsample"],
            "bagging_freq": hp["subsample_freq"] if hp["subsample"] < 1.0 else 0,
            "max_depth": hp["max_depth"],
            "lambda_l2": hp["l2"],
            "lambda_l1": hp["l1"],
            "num_threads": 1,
            "deterministic": True,
            "force_row_wise": True,
            "seed": self.config.seed,
            "verbosity": -1,
        }
        train_set = lgb.Dataset(
            self._flatten(train.X),
            label=np.asarray(train.y, dtype=np.float64),
            feature_name=self.column_names(),
            free_raw_data=True,
        )
        valid_sets, callbacks = [], []
        if valid is not None and len(valid.y) > 0:
            valid_sets.append(
                lgb.Dataset(
                    self._flatten(valid.X),
                    label=np.asarray(valid.y, dtype=np.float64),
                    reference=train_set,
                )
            )
            callbacks.append(lgb.early_stopping(hp["early_stopping_rounds"], verbose=False))
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=hp["n_estimators"],
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        # A fresh booster holds only the kept rounds (the best ones when early stopping)
        # and drops the reference to the training data.
        self.booster = lgb.Booster(model_str=booster.model_to_string())
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Predicted forward returns, ``(n,)`` float64 (``groups`` is unused)."""
        if self.booster is None:
            raise RuntimeError("LightGBMModel must be fitted or loaded before predict")
        check_windows(X, "LightGBMModel: the windows to predict")
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.booster.predict(self._flatten(X)), dtype=np.float64)

    def save(self, directory: Path) -> None:
        """Write the booster (LightGBM text format) and the config (``model.json``)."""
        if self.booster is None:
            raise RuntimeError("LightGBMModel must be fitted before save")
        directory = write_model_meta(directory, self.config, self.hparams,
                                     num_trees=self.booster.num_trees())
        self.booster.save_model(str(directory / self.BOOSTER_FILE))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`."""
        config, _meta = read_model_meta(directory)
        model = cls(config)
        model.booster = lgb.Booster(model_file=str(Path(directory) / cls.BOOSTER_FILE))
        return model

    def training_budget(self) -> dict[str, int]:
        """``{"n_estimators": rounds kept}``: the best round when stopped early, else all."""
        if self.booster is None:
            raise RuntimeError("LightGBMModel must be fitted or loaded before training_budget")
        return {"n_estimators": self.booster.num_trees()}

    def column_names(self) -> list[str]:
        """Names of the flattened columns, in order: ``<feature>__lag<k>``.

        Characters other than letters, digits and ``_`` become ``_`` (LightGBM rejects
        JSON punctuation in feature names).
        """
        lookback = self.config.lookback
        safe_names = [re.sub(r"[^\w]", "_", feature) for feature in self.config.feature_names]
        return [
            f"{feature}__lag{lookback - 1 - step}"
            for step in range(lookback)
            for feature in safe_names
        ]

    def _flatten(self, X: np.ndarray) -> np.ndarray:
        expected = (self.config.lookback, len(self.config.feature_names))
        if X.ndim != 3 or X.shape[1:] != expected:
            raise ValueError(
                f"LightGBMModel expects X of shape (n, {expected[0]}, {expected[1]}) "
                f"(lookback, features {list(self.config.feature_names)}); got {X.shape}"
            )
        return np.asarray(X, dtype=np.float32).reshape(len(X), -1)
