"""The one training loop every neural net in the zoo shares (rule 3).

A net's file defines only its ``nn.Module`` and a small :class:`TorchNetModel` subclass
that declares its capabilities, its network hyperparameters and ``build_network`` (and,
for a net whose samples are not single windows, ``arrange``: see
:meth:`TorchNetModel.arrange`).
Everything else lives here: optimisers (Adam, SGD, RMSprop), learning-rate schedulers
(cosine, plateau), early stopping on validation loss that keeps the best weights (and
reports that epoch as the training budget of the refit on all history), gradient clipping,
seeding, GPU when present, target standardisation, batched prediction and save/load.

The loop itself (a LightningModule and the Trainer) is in :mod:`model_zoo.training_loop`,
imported only when a net trains: loading a served model needs torch, not Lightning (whose
import alone took 3-7 s of a model's load time).

Training writes nothing to disk (no checkpoints, no loggers) and keeps Lightning's
informational logging quiet; a factory run records what matters in MLflow instead.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from torch import nn

from model_zoo.base import Capabilities, Model, ModelConfig, SupervisedData, check_windows
from model_zoo.registry import read_model_meta, resolve_hparams, write_model_meta

OPTIMIZERS = ("adam", "sgd", "rmsprop")
SCHEDULERS = ("none", "cosine", "plateau")
PREDICT_BATCH_SIZE = 4096
_QUIET_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning")
_NOISY_WARNINGS = (
    r".*does not have many workers.*",
    r".*validation_step.*val_dataloader.*",
    r".*smaller than the logging interval.*",
    r".*`training_step` returned `None`.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


@dataclass(frozen=True)
class TrainingHParams:
    """Hyperparameters of the shared training loop (the grid may set any of them).

    Attributes
    ----------
    optimizer : str
        ``"adam"``, ``"sgd"`` (with ``momentum``) or ``"rmsprop"``.
    learning_rate : float
        Learning rate.
    l1 : float
        L1 penalty on the weight matrices, added to the training loss.
    l2 : float
        L2 penalty (the optimiser's weight decay).
    momentum : float
        Momentum for SGD and RMSprop.
    scheduler : str
        ``"none"``, ``"cosine"`` (annealed over ``max_epochs``) or ``"plateau"``
        (halves the rate when the monitored loss stalls for ``patience // 2`` epochs).
    max_epochs : int
        Upper bound on training epochs.
    batch_size : int
        Training mini-batch size.
    patience : int
        Epochs without validation improvement before stopping (only with ``valid``).
    gradient_clip_val : float
        Gradient-norm clip; ``0`` disables clipping.
    accelerator : str
        Lightning accelerator: ``"auto"`` picks a GPU when one is present.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    l1: float = 0.0
    l2: float = 0.0
    momentum: float = 0.9
    scheduler: str = "none"
    max_epochs: int = 20
    batch_size: int = 256
    patience: int = 5
    gradient_clip_val: float = 1.0
    accelerator: str = "auto"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}; got {self.scheduler!r}")
        if (self.learning_rate <= 0 or min(self.l1, self.l2) < 0 or self.max_epochs < 1
                or self.batch_size < 1 or self.patience < 0):
            raise ValueError(f"invalid training hyperparameters: {self}")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every training hyperparameter name with its default."""
        return {f.name: f.default for f in fields(cls)}


@contextlib.contextmanager
def quiet_single_threaded(num_threads: int = 1) -> Iterator[None]:
    """Run the block with ``num_threads`` torch threads and Lightning's info logs muted.

    Restores the previous thread count and log levels afterwards. One thread per worker
    is the house rule: several OpenMP threads beside another busy process were measured
    300x slower on this machine.
    """
    previous_threads = torch.get_num_threads()
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    previous_levels = [logger.level for logger in loggers]
    torch.set_num_threads(num_threads)
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _NOISY_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        torch.set_num_threads(previous_threads)
        for logger, level in zip(loggers, previous_levels, strict=True):
            logger.setLevel(level)


def predict_network(network: nn.Module, X: np.ndarray) -> np.ndarray:
    """Run ``network`` over ``X`` in eval mode without gradients, in batches.

    Uses a GPU when one is present. Returns the outputs as float64 in the network's output
    units: ``(n,)`` for a net that scores each window, ``(n, ...)`` for one whose samples
    hold several (see :meth:`TorchNetModel.arrange`).
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    outputs = []
    with quiet_single_threaded(), torch.inference_mode():
        network = network.to(device).eval()
        for start in range(0, len(X), PREDICT_BATCH_SIZE):
            batch = torch.from_numpy(np.ascontiguousarray(X[start : start + PREDICT_BATCH_SIZE]))
            outputs.append(network(batch.to(device=device, dtype=torch.float32)).cpu().numpy())
        network.cpu()
    if not outputs:
        return np.empty(0, dtype=np.float64)
    return np.concatenate(outputs).astype(np.float64)


class TorchNetModel(Model):
    """:class:`~model_zoo.base.Model` implementation shared by every net.

    Subclasses set ``capabilities`` (the registry's object), ``network_defaults`` (their
    own hyperparameters with defaults) and implement :meth:`build_network`. The grid may
    set any network or :class:`TrainingHParams` name; unknown names raise ``ValueError``.

    The target is standardised with the training fold's mean and standard deviation
    (returns of order 1e-2 otherwise give vanishing gradients) and predictions are
    mapped back to return units.

    :meth:`training_budget` is ``{"max_epochs": epochs}``, the epochs behind the kept weights
    (the best validation epoch, or all of them without ``valid``), saved in ``model.json``.

    The network sees one sample per window unless a subclass overrides :meth:`arrange`
    (the graph net stacks each time step's assets into one sample).
    """

    capabilities: ClassVar[Capabilities]
    network_defaults: ClassVar[Mapping[str, Any]] = {}
    WEIGHTS_FILE: ClassVar[str] = "network.pt"

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        defaults = {**TrainingHParams.defaults(), **self.network_defaults}
        self.hparams = resolve_hparams(config.hparams, defaults, type(self).__name__)
        self.training = TrainingHParams(
            **{key: self.hparams[key] for key in TrainingHParams.defaults()}
        )
        self.network_params = {key: self.hparams[key] for key in self.network_defaults}
        self.network: nn.Module | None = None
        self.y_mean = 0.0
        self.y_std = 1.0
        self.epochs: int | None = None
        self.optimizer_state: dict | None = None

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        """Return a fresh network for ``config`` (input shape) and validated ``params``."""
        raise NotImplementedError

    def arrange(self, X: np.ndarray, groups: np.ndarray | None,
                times: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The network's samples for windows ``X``, and where each window's output lands.

        Parameters
        ----------
        X : np.ndarray
            ``(n, lookback, features)`` checked windows.
        groups, times : np.ndarray or None
            As in :class:`~model_zoo.base.SupervisedData` (None when predict got none).

        Returns
        -------
        samples : np.ndarray
            ``(m, ..., lookback, features)``: every axis but the last two indexes an output
            of the network, which maps ``samples`` to ``samples.shape[:-2]``.
        slots : np.ndarray
            ``(n,)`` position of window ``i``'s output in the flattened outputs. Outputs no
            window fills (padding) get a NaN target, which the shared loop leaves out of the
            loss. Default: each window is its own sample, ``(X, arange(n))``.
        """
        return X, np.arange(len(X))

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Train from scratch on ``train``; ``valid`` drives early stopping."""
        self._check_X(train.X, self.capabilities.min_history)
        y = np.asarray(train.y, dtype=np.float64)
        self.y_mean = float(y.mean())
        self.y_std = float(y.std()) or 1.0
        from model_zoo.training_loop import fit_network, seed_everything

        seed_everything(self.config.seed)
        network = self.build_network(self.config, self.network_params)
        valid_arrays = None
        if valid is not None and len(valid.y) > 0:
            self._check_X(valid.X)
            valid_arrays = self._samples_and_targets(valid)
        self.network, self.epochs, self.optimizer_state = fit_network(
            network, self._samples_and_targets(train), valid_arrays, self.training,
            self.config.seed,
        )
        return self

    def training_budget(self) -> dict[str, int]:
        """``{"max_epochs": epochs}``: the epochs that produced the kept weights."""
        if self.epochs is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted or loaded before "
                               "training_budget")
        return {"max_epochs": self.epochs}

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Predicted forward returns, ``(n,)`` float64 in the input's row order (``groups``
        and ``times`` only reach :meth:`arrange`)."""
        if self.network is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted or loaded before predict")
        self._check_X(X)
        samples, slots = self.arrange(X, groups, times)
        outputs = predict_network(self.network, samples).reshape(-1)[slots]
        return outputs * self.y_std + self.y_mean

    def save(self, directory: Path) -> None:
        """Write the weights (``network.pt``), the optimiser's state (``optimizer.pt``) and
        config, target scaling and epochs (``model.json``)."""
        if self.network is None:
            raise RuntimeError(f"{type(self).__name__} must be fitted before save")
        directory = write_model_meta(directory, self.config, self.hparams,
                                     y_mean=self.y_mean, y_std=self.y_std, epochs=self.epochs)
        torch.save(self.network.state_dict(), directory / self.WEIGHTS_FILE)
        save_optimizer_state(self.optimizer_state, directory)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`."""
        config, meta = read_model_meta(directory)
        model = cls(config)
        model.y_mean = float(meta["y_mean"])
        model.y_std = float(meta["y_std"])
        model.epochs = meta.get("epochs")  # absent from nets saved before it was recorded
        network = model.build_network(model.config, model.network_params)
        state = torch.load(Path(directory) / cls.WEIGHTS_FILE, map_location="cpu",
                           weights_only=True)
        network.load_state_dict(state)
        model.network = network.eval()
        model.optimizer_state = load_optimizer_state(directory)
        return model

    def _samples_and_targets(self, data: SupervisedData) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`arrange`'s samples with the standardised labels in their slots (NaN
        elsewhere)."""
        samples, slots = self.arrange(data.X, data.groups, data.times)
        targets = np.full(samples.shape[:-2], np.nan, dtype=np.float32)
        targets.reshape(-1)[slots] = self._standardise(data.y)
        return samples, targets

    def _standardise(self, y: np.ndarray) -> np.ndarray:
        return ((np.asarray(y, dtype=np.float64) - self.y_mean) / self.y_std).astype(np.float32)

    def _check_X(self, X: np.ndarray, min_rows: int = 0) -> None:
        check_windows(X, f"{type(self).__name__}", min_rows)
        expected = (self.config.lookback, len(self.config.feature_names))
        if X.ndim != 3 or X.shape[1:] != expected:
            raise ValueError(
                f"{type(self).__name__} expects X of shape (n, {expected[0]}, {expected[1]}) "
                f"(lookback, features {list(self.config.feature_names)}); got {X.shape}"
            )


OPTIMIZER_FILE = "optimizer.pt"


def save_optimizer_state(state: dict | None, directory: Path) -> None:
    """Write the optimiser's state beside the weights (nothing for a model without one)."""
    if state is not None:
        torch.save(state, Path(directory) / OPTIMIZER_FILE)


def load_optimizer_state(directory: Path) -> dict | None:
    """The optimiser's state :func:`save_optimizer_state` wrote (``weights_only``), or None
    for a checkpoint saved before it was kept."""
    path = Path(directory) / OPTIMIZER_FILE
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None
