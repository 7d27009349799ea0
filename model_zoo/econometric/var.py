"""Vector autoregression over the asset panel (Sims 1980), via statsmodels' ``VAR``.

Panel. The ``K`` assets' ``ret_1`` series are lined up by ``times`` (each window's last
bar on the universe's common timeline): ``Y[t, k]`` is the last bar of asset ``k``'s
window at time ``t``, missing where the asset has no window at ``t`` (a later start, a
holiday of its calendar, a gap). Only the windows' last bars are used: the earlier bars of
a window cannot be placed on the common timeline without knowing the asset's calendar.

Fit. The ``VAR(p)`` is estimated by OLS (statsmodels) on the times where every asset is
present; statsmodels needs a contiguous sample, so when those times form several runs
(an interior gap of one asset), the longest run is used. ``p`` is ``lags`` when given,
else the order in ``1..max_lags`` that minimises the information criterion ``ic`` (AIC by
default) on that sample (an order of 0 has no dynamics to forecast with, so at least 1).

Forecast. The label of the window ending at ``t`` is ``ret_1`` two bars ahead, so each
asset's prediction is its component of the two-step forecast from the panel known at
``t``: ``Y_{t+1|t} = c + sum_i A_i Y_{t+1-i}`` and ``Y_{t+2|t} = c + A_1 Y_{t+1|t} +
sum_{i>=2} A_i Y_{t+2-i}``; it equals ``VARResults.forecast(Y[t-p+1..t], 2)[-1]``. Where
any asset lacks a bar among ``t-p+1..t``, the forecast falls back to the asset's
unconditional mean ``(I - sum_i A_i)^{-1} c`` (the training mean when the fitted VAR is
not stationary): nothing is guessed for missing bars, and nothing after ``t`` is read.

Units. ``ret_1`` arrives standardised by one scaler pooled over the assets, so a single
least-squares line ``y ~ a + b * forecast`` on the training rows maps all assets'
forecasts to ``y``'s units (as ARIMA does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from statsmodels.tsa.vector_ar.var_model import VAR

from model_zoo.base import (
    TARGET_FEATURE,
    Capabilities,
    Model,
    ModelConfig,
    SupervisedData,
    check_windows,
    default_times,
    least_squares_line,
)
from model_zoo.registry import (
    ARCHITECTURES,
    read_model_meta,
    resolve_hparams,
    write_model_meta,
)

CRITERIA = ("aic", "bic", "hqic", "fpe")
TRENDS = ("c", "n")


class VARModel(Model):
    """Two-step VAR forecaster of every asset's forward return from the ``ret_1`` panel.

    Hyperparameters: ``max_lags`` (largest order the criterion considers, default 5),
    ``lags`` (a fixed order; 0, the default, selects it by ``ic``), ``ic`` (``"aic"``,
    ``"bic"``, ``"hqic"`` or ``"fpe"``; default ``"aic"``), ``trend`` (``"c"`` constant
    or ``"n"`` none; default ``"c"``). ``valid`` is not used: there is no early stopping,
    so the protocol's default ``training_budget`` (``{}``) holds.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["var"].capabilities
    defaults: ClassVar[dict[str, Any]] = {"max_lags": 5, "lags": 0, "ic": "aic", "trend": "c"}

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.hparams = resolve_hparams(config.hparams, self.defaults, type(self).__name__)
        if self.hparams["max_lags"] < 1 or self.hparams["lags"] < 0:
            raise ValueError("VARModel: max_lags must be at least 1 and lags at least 0 "
                             f"(0 selects by {self.hparams['ic']}); got {self.hparams}")
        if self.hparams["ic"] not in CRITERIA:
            raise ValueError(f"VARModel: ic must be one of {CRITERIA}")
        if self.hparams["trend"] not in TRENDS:
            raise ValueError(f"VARModel: trend must be one of {TRENDS}")
        if TARGET_FEATURE not in config.feature_names:
            raise ValueError(f"VARModel reads the {TARGET_FEATURE!r} column, which is not "
                             f"among the features {list(config.feature_names)}")
        self.column = config.feature_names.index(TARGET_FEATURE)
        self.assets: list[int] = []
        self.coefs: np.ndarray | None = None  # (p, K, K): A_1 .. A_p
        self.const = np.zeros(0)
        self.mean = np.zeros(0)
        self.intercept = 0.0
        self.slope = 1.0

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Select the order and estimate the VAR on ``train``'s complete times, then
        calibrate to ``y``."""
        check_windows(train.X, "VARModel: the training windows", self.capabilities.min_history)
        self.assets = sorted(int(group) for group in np.unique(train.groups))
        if len(self.assets) < 2:
            raise ValueError(f"VARModel: needs a panel of at least 2 assets; the training "
                             f"windows hold {len(self.assets)}")
        _, panel = self._panel(train.X, train.groups, train.times)
        sample = _longest_complete_run(panel)
        n_assets, largest = len(self.assets), self.hparams["lags"] or self.hparams["max_lags"]
        if len(sample) <= (n_assets + 1) * largest + 1:
            raise ValueError(
                f"VARModel: {len(sample)} consecutive times with every asset present, too "
                f"short a history for {n_assets} assets and {largest} lag(s): more than "
                f"{(n_assets + 1) * largest + 1} are needed")
        var = VAR(sample)
        lags = self.hparams["lags"] or max(1, int(var.select_order(
            maxlags=largest, trend=self.hparams["trend"]).selected_orders[self.hparams["ic"]]))
        results = var.fit(lags, trend=self.hparams["trend"])
        self.coefs = np.asarray(results.coefs, dtype=np.float64)
        self.const = np.asarray(results.intercept, dtype=np.float64).reshape(n_assets)
        persistence = np.eye(n_assets) - self.coefs.sum(axis=0)
        self.mean = (np.linalg.solve(persistence, self.const) if results.is_stable()
                     else sample.mean(axis=0))
        self._calibrate(self._forecast_scaled(train.X, train.groups, train.times), train.y)
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Calibrated two-step forecasts, ``(n,)`` float64, from the panel up to each row's
        time; ``groups`` must be assets seen in training, ``times`` as in `SupervisedData`."""
        if self.coefs is None:
            raise RuntimeError("VARModel must be fitted or loaded before predict")
        check_windows(X, "VARModel: the windows to predict")
        if groups is None:
            groups = np.zeros(len(X), dtype=np.int64)
        if times is None:
            times = default_times(groups)
        return self.intercept + self.slope * self._forecast_scaled(X, groups, times)

    def save(self, directory: Path) -> None:
        """Write the assets, coefficients, means and calibration to ``model.json``."""
        if self.coefs is None:
            raise RuntimeError("VARModel must be fitted before save")
        write_model_meta(directory, self.config, self.hparams, assets=self.assets,
                         coefs=self.coefs.tolist(), const=self.const.tolist(),
                         mean=self.mean.tolist(), intercept=self.intercept, slope=self.slope)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`."""
        config, meta = read_model_meta(directory)
        model = cls(config)
        model.assets = [int(asset) for asset in meta["assets"]]
        model.coefs = np.asarray(meta["coefs"], dtype=np.float64)
        model.const = np.asarray(meta["const"], dtype=np.float64)
        model.mean = np.asarray(meta["mean"], dtype=np.float64)
        model.intercept = float(meta["intercept"])
        model.slope = float(meta["slope"])
        return model

    @property
    def lags(self) -> int:
        """The fitted order ``p``."""
        return 0 if self.coefs is None else len(self.coefs)

    def two_step_forecast(self, panel: np.ndarray) -> np.ndarray:
        """``Y_{t+2|t}`` for every time ``t`` of a ``(T, K)`` panel; NaN where a lag is
        missing (a time before ``p - 1`` or an asset absent among ``t-p+1..t``)."""
        assert self.coefs is not None
        padded = np.vstack([np.full((self.lags, panel.shape[1]), np.nan), panel])
        n, p = len(panel), self.lags

        def lagged(k: int) -> np.ndarray:
            """``Y_{t-k}`` for every t (k >= 0)."""
            return padded[p - k:p - k + n]

        # coefs[i] is A_{i+1}: Y_{t+1|t} = c + sum_i A_{i+1} Y_{t-i}
        one_step = self.const + sum(lagged(i) @ self.coefs[i].T for i in range(p))
        two_step = self.const + one_step @ self.coefs[0].T
        for i in range(1, p):  # A_{i+1} Y_{t+1-i}: the lags still known at t
            two_step = two_step + lagged(i - 1) @ self.coefs[i].T
        return two_step

    def _panel(self, X: np.ndarray, groups: np.ndarray,
               times: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """``((time index, asset index) of each row, (T, K) panel)`` from the windows."""
        if X.ndim != 3 or X.shape[1:] != (self.config.lookback, len(self.config.feature_names)):
            raise ValueError(f"VARModel expects X of shape (n, {self.config.lookback}, "
                             f"{len(self.config.feature_names)}); got {X.shape}")
        groups, times = np.asarray(groups), np.asarray(times, dtype=np.int64)
        if not len(groups) == len(times) == len(X):
            raise ValueError(f"VARModel: X, groups and times have {len(X)}, {len(groups)} "
                             f"and {len(times)} rows")
        unknown = sorted(set(np.unique(groups).tolist()) - set(self.assets))
        if unknown:
            raise ValueError(f"VARModel: assets {unknown} were not in the training panel "
                             f"{self.assets}; the VAR forecasts only the assets it was fit on")
        asset_index = np.searchsorted(self.assets, groups)
        start = int(times.min()) if len(times) else 0
        time_index = times - start
        panel = np.full((int(time_index.max()) + 1 if len(times) else 0, len(self.assets)),
                        np.nan)
        panel[time_index, asset_index] = X[:, -1, self.column]
        if np.count_nonzero(np.isfinite(panel)) != len(X):
            raise ValueError("VARModel: two windows of one asset share a time; give each "
                             "asset's windows at distinct times")
        return (time_index, asset_index), panel

    def _forecast_scaled(self, X: np.ndarray, groups: np.ndarray,
                         times: np.ndarray) -> np.ndarray:
        """Each row's two-step forecast in the panel's (standard) units."""
        (time_index, asset_index), panel = self._panel(X, groups, times)
        forecast = self.two_step_forecast(panel)[time_index, asset_index]
        return np.where(np.isfinite(forecast), forecast, self.mean[asset_index])

    def _calibrate(self, forecast: np.ndarray, y: np.ndarray) -> None:
        """Least-squares ``y ~ intercept + slope * forecast`` on the training rows."""
        self.intercept, self.slope = least_squares_line(forecast, y)


def _longest_complete_run(panel: np.ndarray) -> np.ndarray:
    """The longest run of consecutive rows of ``panel`` with no missing value."""
    complete = np.isfinite(panel).all(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], complete.astype(np.int8), [0]])))
    starts, stops = edges[::2], edges[1::2]
    if not len(starts):
        return panel[:0]
    longest = int(np.argmax(stops - starts))
    return panel[starts[longest]:stops[longest]]
