"""ARIMA(p, d, q) on the univariate return series, via statsmodels' SARIMAX.

Windows are turned back into the contiguous series they were cut from: for consecutive
windows of one asset, ``series = concat(X[first, :, j], X[rest, -1, j])`` with ``j`` the
column of ``TARGET_FEATURE``. Consecutive rows whose windows do not overlap (a gap in the
data, or a new asset) start a new segment; each segment is filtered on its own.

Timing. The label of the window ending at bar ``t`` is ``ret_1`` two bars ahead, so the
prediction is the Kalman filter's two-step forecast ``E[x_{t+2} | x_{..t}]``:
``a_{t+1|t}`` is ``predicted_state[:, t + 1]``, ``a_{t+2|t} = T a_{t+1|t} + c`` and
``x_hat = Z a_{t+2|t} + d`` (the state-space matrices are time-invariant). At the last
bar of a series this equals ``results.forecast(2)[-1]`` (checked by the contract tests).

Units. ``X`` is standardised with the training fold's mean and standard deviation, which
the model never sees, while ``y`` is the raw forward return. ARMA dynamics are equivariant
to an affine change of units, so the model is fitted on the scaled series and its
forecasts are mapped to ``y``'s units by a least-squares line ``y ~ a + b * forecast``
fitted on the training rows (``a`` and ``b`` recover the scaler's mean and standard
deviation when the forecast is efficient, and shrink it when it is not).

Several assets. Their training segments are concatenated into one series with a run of
missing values between them; the Kalman filter carries the state across the gap with
growing uncertainty, so each segment starts nearly afresh instead of pretending the
next asset's first return follows the previous asset's last one. With few long segments
the remaining approximation (shared parameters, state not exactly re-initialised) is
negligible.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.statespace.sarimax import SARIMAX

from model_zoo.base import (
    TARGET_FEATURE,
    Capabilities,
    Model,
    ModelConfig,
    SupervisedData,
    check_windows,
    least_squares_line,
)
from model_zoo.econometric.series import contiguous_segments
from model_zoo.registry import (
    ARCHITECTURES,
    read_model_meta,
    resolve_hparams,
    write_model_meta,
)

TRENDS = ("n", "c")
SEGMENT_GAP = 20
"""Missing observations placed between concatenated training segments."""


@contextlib.contextmanager
def _quiet_statsmodels() -> Iterator[None]:
    """Mute optimiser noise (convergence, starting-parameter notes); errors still raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=r"Non-stationary starting autoregressive")
        warnings.filterwarnings("ignore", message=r"Non-invertible starting MA")
        yield


class ARIMAModel(Model):
    """ARIMA forecaster of the forward return from the ``ret_1`` series alone.

    Hyperparameters: ``order`` ``[p, d, q]`` (default ``[1, 0, 1]``), ``trend`` ``"c"``
    (constant) or ``"n"`` (none), ``maxiter`` (L-BFGS iterations, default 50: 8,000
    points fit in well under a second). ``valid`` is not used: there is no early stopping,
    so the protocol's default ``training_budget`` (``{}``) holds.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["arima"].capabilities
    defaults: ClassVar[dict[str, Any]] = {"order": [1, 0, 1], "trend": "c", "maxiter": 50}

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.hparams = resolve_hparams(config.hparams, self.defaults, type(self).__name__)
        self.order = tuple(self.hparams["order"])
        if any(value < 0 for value in self.order):
            raise ValueError(f"ARIMAModel: order must be non-negative; got {list(self.order)}")
        if self.hparams["trend"] not in TRENDS:
            raise ValueError(f"ARIMAModel: trend must be one of {TRENDS}")
        if self.hparams["maxiter"] < 1:
            raise ValueError("ARIMAModel: maxiter must be at least 1")
        if TARGET_FEATURE not in config.feature_names:
            raise ValueError(
                f"ARIMAModel reads the {TARGET_FEATURE!r} column, which is not among "
                f"the features {list(config.feature_names)}"
            )
        self.column = config.feature_names.index(TARGET_FEATURE)
        self.params: np.ndarray | None = None
        self.param_names: list[str] = []
        self.converged: bool | None = None
        self.intercept = 0.0
        self.slope = 1.0

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Estimate the ARIMA parameters on ``train``'s series, then calibrate to ``y``."""
        check_windows(train.X, "ARIMAModel: the training windows", self.capabilities.min_history)
        segments = self._segments(train.X, train.groups)
        gap = np.full(SEGMENT_GAP, np.nan)
        pieces: list[np.ndarray] = []
        for _, series in segments:
            pieces.extend([series, gap])
        endog = np.concatenate(pieces[:-1])
        with _quiet_statsmodels():
            results = self._state_space(endog).fit(disp=False, maxiter=self.hparams["maxiter"])
        self.params = np.asarray(results.params, dtype=np.float64)
        self.param_names = list(results.model.param_names)
        self.converged = bool(results.mle_retvals.get("converged", False))
        self._calibrate(self._forecast_scaled(segments, len(train.y)), train.y)
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Two-step-ahead forecasts in ``y``'s units, ``(n,)`` float64.

        ``groups`` gives each row's asset (all one asset when ``None``); rows of an asset
        must be consecutive windows in time order, as in training.
        """
        if self.params is None:
            raise RuntimeError("ARIMAModel must be fitted or loaded before predict")
        check_windows(X, "ARIMAModel: the windows to predict")
        if groups is None:
            groups = np.zeros(len(X), dtype=np.int64)
        forecast = self._forecast_scaled(self._segments(X, groups), len(X))
        return self.intercept + self.slope * forecast

    def save(self, directory: Path) -> None:
        """Write the parameters, calibration and config to ``model.json``."""
        if self.params is None:
            raise RuntimeError("ARIMAModel must be fitted before save")
        write_model_meta(directory, self.config, self.hparams, params=self.params.tolist(),
                         param_names=self.param_names, converged=self.converged,
                         intercept=self.intercept, slope=self.slope)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`."""
        config, meta = read_model_meta(directory)
        model = cls(config)
        model.params = np.asarray(meta["params"], dtype=np.float64)
        model.param_names = list(meta["param_names"])
        model.converged = meta["converged"]
        model.intercept = float(meta["intercept"])
        model.slope = float(meta["slope"])
        return model

    def _state_space(self, endog: np.ndarray) -> SARIMAX:
        return SARIMAX(endog, order=self.order, trend=self.hparams["trend"])

    def _segments(self, X: np.ndarray, groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Split rows into runs of overlapping windows; return (rows, rebuilt series) pairs."""
        if X.ndim == 3 and X.shape[2] != len(self.config.feature_names):
            raise ValueError(f"ARIMAModel expects X of shape (n, {self.config.lookback}, "
                             f"{len(self.config.feature_names)}); got {X.shape}")
        return contiguous_segments(X, groups, self.column, self.config.lookback, "ARIMAModel")

    def _forecast_scaled(
        self, segments: list[tuple[np.ndarray, np.ndarray]], n_rows: int
    ) -> np.ndarray:
        """Two-step forecasts of the (scaled) series for every row, filtering per segment."""
        forecast = np.empty(n_rows, dtype=np.float64)
        lookback = self.config.lookback
        for rows, series in segments:
            with _quiet_statsmodels():
                filtered = self._state_space(series).filter(self.params)
            fr = filtered.filter_results
            transition = _time_invariant(fr.transition, "transition")
            state_intercept = _time_invariant(fr.state_intercept, "state_intercept")
            design = _time_invariant(fr.design, "design")
            obs_intercept = _time_invariant(fr.obs_intercept, "obs_intercept")
            one_step = fr.predicted_state[:, lookback : lookback + len(rows)]
            two_step = transition @ one_step + state_intercept[:, None]
            forecast[rows] = (design @ two_step + obs_intercept[:, None])[0]
        return forecast

    def _calibrate(self, forecast: np.ndarray, y: np.ndarray) -> None:
        """Least-squares ``y ~ intercept + slope * forecast`` on the training rows."""
        self.intercept, self.slope = least_squares_line(forecast, y)


def _time_invariant(matrix: np.ndarray, name: str) -> np.ndarray:
    """The single time slice of a state-space matrix; refuse one that varies in time."""
    if matrix.shape[-1] > 1 and not np.allclose(matrix, matrix[..., :1]):
        raise ValueError(f"ARIMAModel expects a time-invariant {name} matrix")
    return matrix[..., 0]
