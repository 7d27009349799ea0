"""Holt's linear trend exponential smoothing of the log price level (Holt 1957, Winters
1960; Gardner 1985 for the damped trend), via statsmodels' ``ExponentialSmoothing``.

Level. The model smooths the log price rebuilt from the returns: per contiguous segment
(:func:`~model_zoo.econometric.series.contiguous_segments`), ``level_k = sum_{i<=k} ret_1_i``
starting from 0 before the first bar. ``ret_1`` arrives standardised by the fold's scaler,
so this is a log price in standard units with the training drift removed.

Recursion (additive trend, damping ``phi``, ``phi = 1`` undamped)::

    l_t = alpha (y_t - s_{t-m}) + (1 - alpha) (l_{t-1} + phi b_{t-1})
    b_t = beta (l_t - l_{t-1}) + (1 - beta) phi b_{t-1}
    s_t = gamma (y_t - l_{t-1} - phi b_{t-1}) + (1 - gamma) s_{t-m}

The forecast of ``ret_1`` two bars ahead (the label of the window ending at ``t``) is the
forecast level change between ``t + 1`` and ``t + 2``: ``phi**2 b_t + s_{t+2-m} -
s_{t+1-m}``; without a seasonal component, the trend alone. It is mapped to ``y``'s units
by a least-squares line fitted on the training rows (as ARIMA does).

Timing. The smoothing parameters are estimated on the training series only (the
concatenated training segments: one spurious return per segment boundary). Every segment,
at fit and at predict time, starts from the known state ``l_0 = 0`` (the log price before
its first return), ``b_0 = 0`` (the training drift) and zero seasonal terms, so nothing is
estimated from bars after the first one; statsmodels then runs the recursion with the
stored parameters (``fit(optimized=False)``), bar by bar, so ``b_t`` uses bars up to ``t``.

Seasonality. Daily returns have no natural seasonal period (a weekly one is at best a
weak calendar effect), so ``seasonal`` defaults to ``"none"``; ``"add"`` with
``seasonal_periods`` (e.g. 5 trading days, 24 hourly bars) adds an additive seasonal term.
A multiplicative one is not offered: a log price in standard units can be negative.

What it can learn. The undamped trend is an exponentially weighted mean of past returns
(with ``alpha`` near 1, ``b_t = beta r_t + (1 - beta) b_{t-1}``): a momentum forecast that
follows an AR(1) with positive coefficient closely but not exactly (on AR(1) returns with
coefficient 0.5 it fits ``alpha ~ 1, beta ~ 0.5``), and cannot express mean reversion: on
a negative coefficient the fit sets ``beta = 0``, the trend stays at its zero start and the
forecast is a constant.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.holtwinters import ExponentialSmoothing

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

SEASONALS = ("none", "add")
SMOOTHING_PARAMS = ("smoothing_level", "smoothing_trend", "smoothing_seasonal", "damping_trend")


@contextlib.contextmanager
def _quiet_statsmodels() -> Iterator[None]:
    """Mute optimiser convergence notes; errors still raise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


class HoltWintersModel(Model):
    """Holt(-Winters) trend forecaster of the forward return from the ``ret_1`` series.

    Hyperparameters: ``damped`` (damped trend, default ``False``: Holt's linear trend),
    ``seasonal`` (``"none"``, the default, or ``"add"``), ``seasonal_periods`` (the
    period of an additive seasonal term, default 5; ignored without one). ``valid`` is not
    used: there is no early stopping, so the protocol's default ``training_budget``
    (``{}``) holds.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["holt_winters"].capabilities
    defaults: ClassVar[dict[str, Any]] = {"damped": False, "seasonal": "none",
                                          "seasonal_periods": 5}

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.hparams = resolve_hparams(config.hparams, self.defaults, type(self).__name__)
        if self.hparams["seasonal"] not in SEASONALS:
            raise ValueError(f"HoltWintersModel: seasonal must be one of {SEASONALS}")
        if self.hparams["seasonal"] == "add" and self.hparams["seasonal_periods"] < 2:
            raise ValueError("HoltWintersModel: seasonal_periods must be at least 2")
        if TARGET_FEATURE not in config.feature_names:
            raise ValueError(f"HoltWintersModel reads the {TARGET_FEATURE!r} column, which is "
                             f"not among the features {list(config.feature_names)}")
        self.column = config.feature_names.index(TARGET_FEATURE)
        self.period = self.hparams["seasonal_periods"] if self.seasonal else 0
        self.smoothing: dict[str, float] | None = None
        self.intercept = 0.0
        self.slope = 1.0

    @property
    def seasonal(self) -> bool:
        """Whether the model has an additive seasonal term."""
        return self.hparams["seasonal"] == "add"

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Estimate the smoothing parameters on ``train``'s log price, then calibrate."""
        check_windows(train.X, "HoltWintersModel: the training windows",
                      self.capabilities.min_history)
        segments = self._segments(train.X, train.groups)
        level = np.cumsum(np.concatenate([series for _, series in segments]))
        with _quiet_statsmodels():
            results = self.smoother(level).fit(optimized=True)
        self.smoothing = {name: float(results.params[name]) for name in SMOOTHING_PARAMS
                          if np.isfinite(results.params[name])}
        self._calibrate(self._forecast_scaled(segments, len(train.y)), train.y)
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Calibrated forecasts of the return two bars ahead, ``(n,)`` float64; rows of an
        asset (``groups``) are consecutive windows in time order."""
        if self.smoothing is None:
            raise RuntimeError("HoltWintersModel must be fitted or loaded before predict")
        check_windows(X, "HoltWintersModel: the windows to predict")
        if groups is None:
            groups = np.zeros(len(X), dtype=np.int64)
        forecast = self._forecast_scaled(self._segments(X, groups), len(X))
        return self.intercept + self.slope * forecast

    def save(self, directory: Path) -> None:
        """Write the smoothing parameters and calibration to ``model.json``."""
        if self.smoothing is None:
            raise RuntimeError("HoltWintersModel must be fitted before save")
        write_model_meta(directory, self.config, self.hparams, smoothing=self.smoothing,
                         intercept=self.intercept, slope=self.slope)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`."""
        config, meta = read_model_meta(directory)
        model = cls(config)
        model.smoothing = {name: float(value) for name, value in meta["smoothing"].items()}
        model.intercept = float(meta["intercept"])
        model.slope = float(meta["slope"])
        return model

    def smoother(self, level: np.ndarray) -> ExponentialSmoothing:
        """statsmodels' model of ``level`` from the known zero initial state."""
        seasonal = {"seasonal": "add", "seasonal_periods": self.period,
                    "initial_seasonal": np.zeros(self.period)} if self.seasonal else {}
        return ExponentialSmoothing(level, trend="add", damped_trend=self.hparams["damped"],
                                    initialization_method="known", initial_level=0.0,
                                    initial_trend=0.0, **seasonal)

    def level_change_forecast(self, level: np.ndarray) -> np.ndarray:
        """Forecast change of ``level`` from ``t + 1`` to ``t + 2`` at every bar ``t``."""
        assert self.smoothing is not None
        n = len(level)
        if n == 1:  # statsmodels refuses one bar; a copy after it changes nothing at t = 0
            level = np.concatenate([level, level])
        with _quiet_statsmodels():
            results = self.smoother(level).fit(optimized=False, **self.smoothing)
        damping = self.smoothing.get("damping_trend", 1.0) if self.hparams["damped"] else 1.0
        change = damping**2 * np.asarray(results.trend, dtype=np.float64)[:n]
        if self.seasonal:
            # season[k + m] is s_k, the zero initial terms s_{-m}..s_{-1} first, so
            # s_{t+2-m} - s_{t+1-m} is season[t + 2] - season[t + 1]
            season = np.concatenate([np.zeros(self.period),
                                     np.asarray(results.season, dtype=np.float64)])
            bars = np.arange(n)
            change = change + season[bars + 2] - season[bars + 1]
        return change

    def _segments(self, X: np.ndarray, groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return contiguous_segments(X, groups, self.column, self.config.lookback,
                                   "HoltWintersModel")

    def _forecast_scaled(self, segments: list[tuple[np.ndarray, np.ndarray]],
                         n_rows: int) -> np.ndarray:
        """Two-step return forecasts (standard units) for every row, per segment."""
        forecast = np.empty(n_rows, dtype=np.float64)
        lookback = self.config.lookback
        for rows, series in segments:
            change = self.level_change_forecast(np.cumsum(series))
            forecast[rows] = change[lookback - 1:lookback - 1 + len(rows)]
        return forecast

    def _calibrate(self, forecast: np.ndarray, y: np.ndarray) -> None:
        """Least-squares ``y ~ intercept + slope * forecast`` on the training rows."""
        self.intercept, self.slope = least_squares_line(forecast, y)
