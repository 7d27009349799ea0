"""The one protocol every architecture implements.

Data reaches a model as sliding windows: ``X`` has shape ``(n, lookback, n_features)``
(float32, already scaled by a scaler fitted on the training fold only) and ``y`` has shape
``(n,)``: the forward return the window's last bar predicts. Windows of one asset are
consecutive in time (row ``i + 1`` is row ``i`` shifted one bar); ``groups`` says which asset
each row belongs to, so a model that needs contiguous series (ARIMA) can rebuild them.

Sequence models consume the windows as they are, tabular models flatten them, univariate
models read the single column named ``target_feature`` (the one-bar log return ``ret_1``).

Every architecture subclasses :class:`Model` explicitly: the protocol checks the methods and
lends the default of :meth:`Model.training_budget` (``{}``), so only a model that stops early
on the validation block overrides it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

TARGET_FEATURE = "ret_1"
"""Feature every feature set provides: log(close_t / close_{t-1}); univariate models use it."""


@dataclass(frozen=True)
class Capabilities:
    """What an architecture can consume; ``grid.expand`` drops cells that contradict it.

    Attributes
    ----------
    family : str
        One of ``"net"``, ``"tree"``, ``"linear"``, ``"econometric"``, ``"rl"``.
    sequence : bool
        Consumes windows as ordered sequences (otherwise flattens them).
    univariate : bool
        Uses only ``TARGET_FEATURE``; other feature sets would only duplicate the cell.
    uses_lookback : bool
        The lookback changes what the model sees (ARIMA filters the whole history instead).
    multi_asset : bool
        Trains one pooled model across assets.
    gpu : bool
        Can train on a GPU when one is present.
    panel : bool
        Needs a panel of at least two assets lined up in time (``SupervisedData.times``):
        VAR, the graph network. ``grid.expand`` drops it on a one-asset universe, and serving
        scores all assets of the bars together.
    min_history : int
        Fewest training windows a fit needs; a shorter training set raises a ValueError that
        says so.
    """

    family: str
    sequence: bool = False
    univariate: bool = False
    uses_lookback: bool = True
    multi_asset: bool = True
    gpu: bool = False
    panel: bool = False
    min_history: int = 1


@dataclass(frozen=True)
class ModelConfig:
    """Everything a model's constructor needs.

    Attributes
    ----------
    hparams : Mapping[str, Any]
        Architecture hyperparameters from the grid (validated by the model).
    feature_names : tuple[str, ...]
        Names of the last axis of ``X``, in order.
    lookback : int
        Window length (second axis of ``X``).
    seed : int
        Seed for every random number generator the model uses.
    """

    hparams: Mapping[str, Any]
    feature_names: tuple[str, ...]
    lookback: int
    seed: int = 0


@dataclass(frozen=True)
class SupervisedData:
    """Windows, labels and asset groups for one split of one fold.

    Attributes
    ----------
    X : np.ndarray
        ``(n, lookback, n_features)`` float32 windows.
    y : np.ndarray
        ``(n,)`` float32 forward returns.
    groups : np.ndarray
        ``(n,)`` integer asset codes; rows of one group are consecutive windows in time order.
    times : np.ndarray
        ``(n,)`` integer position of each window's last bar on the universe's common timeline:
        windows of different assets at the same bar share it, which is how a panel model
        (``Capabilities.panel``) lines the assets up. Default: `default_times`.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray = field(default=None)  # type: ignore[assignment]
    times: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.X.ndim != 3:
            raise ValueError(f"X must be (n, lookback, features); got shape {self.X.shape}")
        if len(self.X) != len(self.y):
            raise ValueError(f"X has {len(self.X)} rows but y has {len(self.y)}")
        if self.groups is None:
            object.__setattr__(self, "groups", np.zeros(len(self.y), dtype=np.int64))
        elif len(self.groups) != len(self.y):
            raise ValueError(f"groups has {len(self.groups)} rows but y has {len(self.y)}")
        check_windows(self.X, "the training or validation windows")
        if self.times is None:
            object.__setattr__(self, "times", default_times(self.groups))
        elif len(self.times) != len(self.y):
            raise ValueError(f"times has {len(self.times)} rows but y has {len(self.y)}")


def check_windows(X: np.ndarray, where: str, min_rows: int = 0) -> None:
    """Refuse windows a model cannot use, saying which and why.

    Parameters
    ----------
    X : np.ndarray
        ``(n, lookback, n_features)`` windows.
    where : str
        What the windows are, for the message (e.g. ``"lstm: the windows to predict"``).
    min_rows : int
        Fewest windows needed (``Capabilities.min_history`` when fitting).

    Raises
    ------
    ValueError
        When ``X`` is not 3-D, holds NaN or infinite values (naming the first rows), or has
        fewer than ``min_rows`` windows.
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"{where}: expected (n, lookback, features) windows, got shape {X.shape}")
    bad = np.flatnonzero(~np.isfinite(X).all(axis=(1, 2)))
    if bad.size:
        raise ValueError(f"{where}: {bad.size} window(s) hold NaN or infinite values, e.g. rows "
                         f"{bad[:5].tolist()}; give complete windows (after the feature warm-up)")
    if len(X) < min_rows:
        raise ValueError(f"{where}: {len(X)} window(s), too short a history: at least "
                         f"{min_rows} are needed")


def least_squares_line(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``(intercept, slope)`` of ``y ~ intercept + slope * score`` on the training rows.

    How a model whose raw output is not a return (a filtered forecast in scaled units, a
    probability, a policy's preference) maps it to a forecast of the forward return; the
    slope is 0 when ``score`` is constant.
    """
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    centred = score - score.mean()
    variance = float(centred @ centred)
    slope = float(centred @ (y - y.mean()) / variance) if variance > 1e-12 else 0.0
    return float(y.mean() - slope * score.mean()), slope


def default_times(groups: np.ndarray) -> np.ndarray:
    """Times when none are given: each group's windows numbered 0, 1, ... in row order, so
    that windows of different groups at the same row offset share a time."""
    groups = np.asarray(groups)
    times = np.empty(len(groups), dtype=np.int64)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        times[rows] = np.arange(len(rows))
    return times


@runtime_checkable
class Model(Protocol):
    """The protocol of every architecture in the zoo.

    Implementations subclass it (``class LightGBMModel(Model)``) to inherit the default of
    :meth:`training_budget`; ``fit``, ``predict``, ``save`` and ``load`` have no default.
    """

    capabilities: ClassVar[Capabilities]

    def __init__(self, config: ModelConfig) -> None: ...

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Learn from ``train``; ``valid`` (later in time) drives early stopping if used."""
        ...

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Score each window of ``X``; returns ``(n,)`` float64 predicted forward returns.

        ``groups`` and ``times`` are as in `SupervisedData` (defaults: one group, and
        `default_times`); only panel models need ``times``.
        """
        ...

    def save(self, directory: Path) -> None:
        """Write everything needed to rebuild the fitted model into ``directory``."""
        ...

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model that ``save`` wrote."""
        ...

    def training_budget(self) -> dict[str, int]:
        """Hyperparameter overrides that reproduce how long this fitted model trained.

        The walk-forward folds stop early on their validation block; the model refitted on
        all history has none, so it trains for the median budget of the folds instead
        (``factory.training.fit``), with these overrides merged over the spec's
        hyperparameters and ``valid=None``. Each value is a count (boosting rounds, epochs)
        and each key one of the model's own hyperparameters.

        Returns
        -------
        dict[str, int]
            E.g. ``{"n_estimators": 87}`` for boosted trees that kept 87 rounds. The default,
            ``{}``, is right for every model that does not stop early.
        """
        return {}
