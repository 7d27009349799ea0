"""Rank-gauss inputs, a denoising autoencoder, LightGBM on its bottleneck codes.

The recipe of Jahrer's winning solution to Kaggle's Porto Seguro Safe Driver Prediction
(2017), after Vincent, Larochelle, Bengio and Manzagol (2008), "Extracting and Composing
Robust Features with Denoising Autoencoders", ICML:

1. rank-gauss: each feature's empirical CDF on the training windows, mapped through the
   normal quantile function; at predict time each value is interpolated on the stored
   training quantiles (point in time: nothing but the training fold is ever fitted);
2. a denoising autoencoder on the flattened window: the inputs are corrupted (swap noise:
   each entry replaced, with probability ``noise``, by the same column of another row of
   the batch; or Gaussian noise of standard deviation ``noise``) and the network learns to
   reconstruct the clean ones, on the shared training loop (early stopping on the
   validation fold's reconstruction error);
3. LightGBM (:class:`~model_zoo.trees.lightgbm_model.LightGBMModel`, so it boosts and stops
   early exactly as the ``lightgbm`` architecture does) predicts the forward return from
   the ``bottleneck`` codes of the clean inputs.

Persistence: the autoencoder's weights (torch, ``weights_only``), the booster as LightGBM
text and the rank-gauss quantiles in ``model.json``: no pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from scipy.special import ndtri
from torch import nn

from model_zoo.base import Capabilities, Model, ModelConfig, SupervisedData, check_windows
from model_zoo.lightning import (
    TrainingHParams,
    load_optimizer_state,
    predict_network,
    save_optimizer_state,
)
from model_zoo.registry import (
    ARCHITECTURES,
    read_model_meta,
    resolve_hparams,
    write_model_meta,
)
from model_zoo.trees.lightgbm_model import LightGBMModel

NOISE_TYPES = ("swap", "gaussian")
TREE_HPARAMS = {"n_estimators": "n_estimators", "tree_learning_rate": "learning_rate",
                "num_leaves": "num_leaves", "min_child_samples": "min_child_samples",
                "feature_fraction": "feature_fraction", "subsample": "subsample",
                "tree_l2": "l2", "early_stopping_rounds": "early_stopping_rounds"}
"""This model's LightGBM hyperparameters -> the ``lightgbm`` architecture's names."""


def fit_rank_gauss(X: np.ndarray, n_quantiles: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per feature, training quantiles and their normal scores.

    Parameters
    ----------
    X : np.ndarray
        ``(n, lookback, n_features)`` training windows.
    n_quantiles : int
        Points of the stored empirical CDF (probabilities ``(i + 0.5) / n_quantiles``).

    Returns
    -------
    list of (quantiles, scores)
        One pair per feature: increasing distinct quantile values and the normal quantile
        of their (tie-averaged) probabilities.
    """
    probabilities = (np.arange(n_quantiles) + 0.5) / n_quantiles
    pairs = []
    for feature in range(X.shape[2]):
        values = np.quantile(X[:, :, feature].astype(np.float64), probabilities)
        distinct, tie = np.unique(values, return_inverse=True)
        averaged = np.bincount(tie, probabilities) / np.bincount(tie)
        pairs.append((distinct, ndtri(averaged)))
    return pairs


def rank_gauss(X: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Map each feature of ``X`` through its stored CDF to normal scores (float32).

    Values between stored quantiles are interpolated; values beyond the training range
    take the extreme scores.
    """
    out = np.empty(X.shape, dtype=np.float32)
    for feature, (quantiles, scores) in enumerate(pairs):
        if len(quantiles) == 1:  # a constant training feature carries nothing
            out[:, :, feature] = 0.0
        else:
            out[:, :, feature] = np.interp(X[:, :, feature], quantiles, scores)
    return out


class DenoisingAutoencoder(nn.Module):
    """``encoder``: flatten -> hidden -> ``bottleneck`` codes; ``decoder``: back to the
    flattened window. ``forward`` corrupts its input while training and reconstructs.

    Parameters
    ----------
    n_inputs : int
        ``lookback * n_features``.
    hidden_size, bottleneck : int
        Widths of the hidden layer (each side) and of the codes.
    noise_type : str
        ``"swap"`` or ``"gaussian"``.
    noise : float
        Swap probability, or the Gaussian noise's standard deviation.
    dropout : float
        Dropout after the hidden layers.
    """

    def __init__(self, n_inputs: int, hidden_size: int, bottleneck: int, noise_type: str,
                 noise: float, dropout: float) -> None:
        super().__init__()
        self.noise_type = noise_type
        self.noise = noise
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(n_inputs, hidden_size), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden_size, bottleneck), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.Linear(bottleneck, hidden_size), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden_size, n_inputs),
        )

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """Swap noise (entries from other rows of the batch, same column) or Gaussian."""
        if self.noise_type == "gaussian":
            return x + self.noise * torch.randn_like(x)
        donors = torch.randint(0, x.shape[0], x.shape, device=x.device)
        return torch.where(torch.rand_like(x) < self.noise, x.gather(0, donors), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to the ``(batch, lookback * n_features)``
        reconstruction (of the clean window, from a corrupted one while training)."""
        x = x.flatten(1)
        if self.training and self.noise > 0:
            x = self.corrupt(x)
        return self.decoder(self.encoder(x))


class DAELightGBMModel(Model):
    """Rank-gauss, denoising autoencoder, LightGBM on the codes.

    Hyperparameters. Autoencoder: ``hidden_size`` (128), ``bottleneck`` (64), ``noise_type``
    (``"swap"``), ``noise`` (0.15), ``dropout`` (0.0), ``n_quantiles`` (rank-gauss CDF
    points, 1000), and the shared loop's :class:`~model_zoo.lightning.TrainingHParams`
    (``learning_rate``, ``l2``, ``max_epochs``, ``batch_size``, ``patience``, ...).
    LightGBM: ``n_estimators`` (300), ``tree_learning_rate`` (0.05), ``num_leaves`` (15),
    ``min_child_samples`` (50), ``feature_fraction`` (0.8), ``subsample`` (0.8),
    ``tree_l2`` (1.0), ``early_stopping_rounds`` (30).

    :meth:`training_budget` covers both stages: ``{"max_epochs": e, "n_estimators": n}``.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["dae_lgbm"].capabilities
    network_defaults: ClassVar[dict[str, Any]] = {
        "hidden_size": 128,
        "bottleneck": 64,
        "noise_type": "swap",
        "noise": 0.15,
        "dropout": 0.0,
        "n_quantiles": 1000,
    }
    tree_defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 300,
        "tree_learning_rate": 0.05,
        "num_leaves": 15,
        "min_child_samples": 50,
        "feature_fraction": 0.8,
        "subsample": 0.8,
        "tree_l2": 1.0,
        "early_stopping_rounds": 30,
    }
    WEIGHTS_FILE: ClassVar[str] = "dae.pt"
    TREES_DIR: ClassVar[str] = "lightgbm"

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        defaults = {**TrainingHParams.defaults(), **self.network_defaults, **self.tree_defaults}
        self.hparams = resolve_hparams(config.hparams, defaults, type(self).__name__)
        hp = self.hparams
        if (hp["noise_type"] not in NOISE_TYPES or hp["noise"] < 0 or hp["hidden_size"] < 1
                or hp["bottleneck"] < 1 or hp["n_quantiles"] < 2):
            raise ValueError(f"DAELightGBMModel: invalid hyperparameters {hp} (noise_type one "
                             f"of {NOISE_TYPES}, noise >= 0, n_quantiles >= 2)")
        self.training = TrainingHParams(**{key: hp[key] for key in TrainingHParams.defaults()})
        self.trees = LightGBMModel(self._tree_config())
        self.network: DenoisingAutoencoder | None = None
        self.rank_gauss: list[tuple[np.ndarray, np.ndarray]] = []
        self.epochs: int | None = None
        self.optimizer_state: dict | None = None

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Fit the rank-gauss and the autoencoder on ``train`` (early stopping on
        ``valid``'s reconstruction error), then LightGBM on the codes (early stopping on
        ``valid``'s forward returns)."""
        self._check_X(train.X, self.capabilities.min_history)
        if valid is not None and len(valid.y) == 0:
            valid = None
        if valid is not None:
            self._check_X(valid.X)
        from model_zoo.training_loop import fit_network, seed_everything

        self.rank_gauss = fit_rank_gauss(train.X, self.hparams["n_quantiles"])
        train_inputs = rank_gauss(train.X, self.rank_gauss)
        valid_inputs = None if valid is None else rank_gauss(valid.X, self.rank_gauss)
        seed_everything(self.config.seed)
        self.network, self.epochs, self.optimizer_state = fit_network(
            self._build_network(), (train_inputs, train_inputs.reshape(len(train_inputs), -1)),
            None if valid_inputs is None else (valid_inputs,
                                               valid_inputs.reshape(len(valid_inputs), -1)),
            self.training, self.config.seed,
        )
        self.trees = LightGBMModel(self._tree_config()).fit(
            self._codes(train_inputs, train),
            None if valid is None else self._codes(valid_inputs, valid),
        )
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Predicted forward returns, ``(n,)`` float64 (``groups`` and ``times`` unused)."""
        if self.network is None:
            raise RuntimeError("DAELightGBMModel must be fitted or loaded before predict")
        self._check_X(X)
        if len(X) == 0:
            return np.empty(0, dtype=np.float64)
        codes = predict_network(self.network.encoder, rank_gauss(X, self.rank_gauss))
        return self.trees.predict(codes.astype(np.float32)[:, None, :])

    def training_budget(self) -> dict[str, int]:
        """``{"max_epochs": autoencoder epochs kept, "n_estimators": boosting rounds kept}``."""
        if self.epochs is None or self.trees.booster is None:
            raise RuntimeError("DAELightGBMModel must be fitted or loaded before "
                               "training_budget")
        return {"max_epochs": self.epochs, **self.trees.training_budget()}

    def save(self, directory: Path) -> None:
        """Write ``model.json`` (config, epochs, rank-gauss quantiles), the autoencoder's
        weights (``dae.pt``) and optimiser state (``optimizer.pt``), and the booster
        (``lightgbm/``)."""
        if self.network is None:
            raise RuntimeError("DAELightGBMModel must be fitted before save")
        quantiles = [[q.tolist(), s.tolist()] for q, s in self.rank_gauss]
        directory = write_model_meta(directory, self.config, self.hparams, epochs=self.epochs,
                                     rank_gauss=quantiles)
        torch.save(self.network.state_dict(), directory / self.WEIGHTS_FILE)
        save_optimizer_state(self.optimizer_state, directory)
        self.trees.save(directory / self.TREES_DIR)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`."""
        directory = Path(directory)
        config, meta = read_model_meta(directory)
        model = cls(config)
        model.epochs = int(meta["epochs"])
        model.rank_gauss = [(np.asarray(q, dtype=np.float64), np.asarray(s, dtype=np.float64))
                            for q, s in meta["rank_gauss"]]
        network = model._build_network()
        network.load_state_dict(torch.load(directory / cls.WEIGHTS_FILE, map_location="cpu",
                                           weights_only=True))
        model.network = network.eval()
        model.optimizer_state = load_optimizer_state(directory)
        model.trees = LightGBMModel.load(directory / cls.TREES_DIR)
        return model

    def _build_network(self) -> DenoisingAutoencoder:
        hp = self.hparams
        return DenoisingAutoencoder(
            n_inputs=self.config.lookback * len(self.config.feature_names),
            hidden_size=hp["hidden_size"], bottleneck=hp["bottleneck"],
            noise_type=hp["noise_type"], noise=hp["noise"], dropout=hp["dropout"],
        )

    def _tree_config(self) -> ModelConfig:
        """The LightGBM stage's config: its hyperparameters, one "bar" of codes."""
        return ModelConfig(
            hparams={name: self.hparams[ours] for ours, name in TREE_HPARAMS.items()},
            feature_names=tuple(f"code_{i}" for i in range(self.hparams["bottleneck"])),
            lookback=1, seed=self.config.seed,
        )

    def _codes(self, inputs: np.ndarray, data: SupervisedData) -> SupervisedData:
        """``data`` with its windows replaced by their codes, as one-bar windows."""
        codes = predict_network(self.network.encoder, inputs).astype(np.float32)
        return SupervisedData(X=codes[:, None, :], y=data.y, groups=data.groups,
                              times=data.times)

    def _check_X(self, X: np.ndarray, min_rows: int = 0) -> None:
        check_windows(X, "DAELightGBMModel", min_rows)
        expected = (self.config.lookback, len(self.config.feature_names))
        if X.shape[1:] != expected:
            raise ValueError(
                f"DAELightGBMModel expects X of shape (n, {expected[0]}, {expected[1]}) "
                f"(lookback, features {list(self.config.feature_names)}); got {X.shape}"
            )
