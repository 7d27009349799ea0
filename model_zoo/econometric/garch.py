"""AR(p) mean with GARCH(p, q) volatility (Bollerslev 1986), via the ``arch`` package.

The signal is a Sharpe-like forecast: the two-step-ahead conditional mean over the two-step
conditional volatility, ``E[x_{t+2} | x_{..t}] / sqrt(Var[x_{t+2} | x_{..t}])``, mapped to
``y``'s units by a least-squares line fitted on the training rows (as ARIMA does).

Series. Windows are turned back into the contiguous ``ret_1`` series they were cut from
(:func:`~model_zoo.econometric.series.contiguous_segments`); each segment is filtered on
its own. ``arch`` takes no missing values, so the fit concatenates the training segments:
the first ``ar_lags`` returns of each later segment are regressed on the previous one's
last returns and its variance carries over, a negligible approximation with a few long
segments.

Units. ``arch`` wants returns of a magnitude like percent returns (variance between 0.1
and 10,000: its ``DataScaleWarning``). ``ret_1`` reaches the model already standardised
by the fold's scaler (unit variance, so ``x100`` would overshoot to 10,000), so the model
rescales by a factor fitted on the training series that brings its variance to one: about
``x1`` for the factory's inputs, about ``x100`` (percent) for raw daily log returns
(``arch``'s own ``rescale`` is off). The factor is stored; the signal (a mean over a
standard deviation) does not depend on it, only the optimiser's numerics do.

Timing and recursion. Parameters come from ``arch_model(...).fit`` on training data only.
At predict time the model runs the AR residual and GARCH variance recursions itself with
those parameters (:func:`two_step_forecast`, the recursion of ``arch``'s
``garch_recursion`` without its variance bounds): ``sigma2_{t+1}`` is known at ``t``, the
innovation's variance is ``sigma2_{t+2|t} = omega + (alpha_1 + beta_1) sigma2_{t+1}`` for
GARCH(1, 1) (the analytic forecast), and the variance of the return's two-step forecast
error ``e_{t+2} + phi_1 e_{t+1}`` adds ``phi_1**2 sigma2_{t+1}``: ``arch``'s
``forecast().variance``. Each segment starts from the training model's unconditional
variance (not ``arch``'s backcast, which averages the segment's first 75 residuals: a
look-ahead), with lags before its first bar at the unconditional mean. A unit test checks
the recursion against ``ARCHModelFixedResult.forecast`` given the same starting variance.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from arch import arch_model
from arch.utility.exceptions import ConvergenceWarning

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

DISTRIBUTIONS = ("normal", "t", "skewt", "ged")
"""The innovations' likelihoods, as ``arch`` names them: Gaussian, Student's t, Hansen's
skewed t, generalised error."""


class GARCHModel(Model):
    """Mean-over-volatility forecaster from the ``ret_1`` series alone.

    Hyperparameters: ``ar_lags`` (AR order of the mean, default 1; 0 is a constant mean,
    whose signal then only times volatility), ``p`` (ARCH order, lagged squared
    residuals, default 1), ``q`` (GARCH order, lagged variances, default 1), ``dist``
    (the innovations' likelihood, one of :data:`DISTRIBUTIONS`; default ``"normal"``),
    ``maxiter`` (SLSQP iterations, default 200). ``valid`` is not used: there is no early
    stopping, so the protocol's default ``training_budget`` (``{}``) holds.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["garch"].capabilities
    defaults: ClassVar[dict[str, Any]] = {"ar_lags": 1, "p": 1, "q": 1, "dist": "normal",
                                          "maxiter": 200}

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.hparams = resolve_hparams(config.hparams, self.defaults, type(self).__name__)
        for name, least in (("ar_lags", 0), ("p", 1), ("q", 0), ("maxiter", 1)):
            if self.hparams[name] < least:
                raise ValueError(f"GARCHModel: {name} must be at least {least}; "
                                 f"got {self.hparams[name]}")
        if self.hparams["dist"] not in DISTRIBUTIONS:
            raise ValueError(f"GARCHModel: dist must be one of {DISTRIBUTIONS}")
        if TARGET_FEATURE not in config.feature_names:
            raise ValueError(f"GARCHModel reads the {TARGET_FEATURE!r} column, which is not "
                             f"among the features {list(config.feature_names)}")
        self.column = config.feature_names.index(TARGET_FEATURE)
        self.params: np.ndarray | None = None
        self.param_names: list[str] = []
        self.converged: bool | None = None
        self.scale = 1.0
        self.start_variance = 1.0
        self.intercept = 0.0
        self.slope = 1.0

    def fit(self, train: SupervisedData, valid: SupervisedData | None = None) -> Self:
        """Estimate the AR-GARCH parameters on ``train``'s series, then calibrate to ``y``."""
        check_windows(train.X, "GARCHModel: the training windows", self.capabilities.min_history)
        segments = contiguous_segments(train.X, train.groups, self.column,
                                       self.config.lookback, "GARCHModel")
        series = np.concatenate([values for _, values in segments])
        spread = float(np.std(series))
        self.scale = 1.0 / spread if spread > 1e-12 else 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            results = self._arch_model(self.scale * series).fit(
                disp="off", show_warning=False, options={"maxiter": self.hparams["maxiter"]})
        self.params = np.asarray(results.params, dtype=np.float64)
        self.param_names = list(results.params.index)
        self.converged = bool(results.convergence_flag == 0)
        self.start_variance = self._unconditional_variance(results.resid)
        self._calibrate(self._signal(segments, len(train.y)), train.y)
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None,
                times: np.ndarray | None = None) -> np.ndarray:
        """Calibrated mean-over-volatility forecasts of the return two bars ahead,
        ``(n,)`` float64; rows of an asset (``groups``) are consecutive windows in order."""
        if self.params is None:
            raise RuntimeError("GARCHModel must be fitted or loaded before predict")
        check_windows(X, "GARCHModel: the windows to predict")
        if groups is None:
            groups = np.zeros(len(X), dtype=np.int64)
        segments = contiguous_segments(X, groups, self.column, self.config.lookback,
                                       "GARCHModel")
        return self.intercept + self.slope * self._signal(segments, len(X))

    def save(self, directory: Path) -> None:
        """Write the parameters, scale, starting variance and calibration to ``model.json``."""
        if self.params is None:
            raise RuntimeError("GARCHModel must be fitted before save")
        write_model_meta(directory, self.config, self.hparams, params=self.params.tolist(),
                         param_names=self.param_names, converged=self.converged,
                         scale=self.scale, start_variance=self.start_variance,
                         intercept=self.intercept, slope=self.slope)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Rebuild a fitted model written by :meth:`save`."""
        config, meta = read_model_meta(directory)
        model = cls(config)
        model.params = np.asarray(meta["params"], dtype=np.float64)
        model.param_names = list(meta["param_names"])
        model.converged = meta["converged"]
        for name in ("scale", "start_variance", "intercept", "slope"):
            setattr(model, name, float(meta[name]))
        return model

    def _arch_model(self, series: np.ndarray):
        """The ``arch`` model of the (rescaled) series: AR mean, GARCH variance."""
        return arch_model(series, mean="AR", lags=self.hparams["ar_lags"], vol="GARCH",
                          p=self.hparams["p"], q=self.hparams["q"], dist=self.hparams["dist"],
                          rescale=False)

    def split_params(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, variance)`` parameters: ``[const, phi_1..]`` and
        ``[omega, alpha_1.., beta_1..]`` (the distribution's shape parameters, last, are not
        needed)."""
        assert self.params is not None
        n_mean = 1 + self.hparams["ar_lags"]
        n_variance = 1 + self.hparams["p"] + self.hparams["q"]
        return self.params[:n_mean], self.params[n_mean:n_mean + n_variance]

    def _unconditional_variance(self, residuals: Any) -> float:
        """``omega / (1 - sum alpha - sum beta)`` when stationary, else the residuals' own."""
        _, variance = self.split_params()
        persistence = float(variance[1:].sum())
        if persistence < 0.999:
            return float(variance[0] / (1.0 - persistence))
        return float(np.nanvar(np.asarray(residuals, dtype=np.float64)))

    def _signal(self, segments: list[tuple[np.ndarray, np.ndarray]], n_rows: int) -> np.ndarray:
        """Two-step mean over two-step volatility for every row, per segment."""
        mean_params, variance_params = self.split_params()
        signal = np.empty(n_rows, dtype=np.float64)
        lookback = self.config.lookback
        for rows, series in segments:
            mean, variance = two_step_forecast(self.scale * series, mean_params,
                                               variance_params, self.hparams["p"],
                                               self.start_variance)
            window = slice(lookback - 1, lookback - 1 + len(rows))
            signal[rows] = mean[window] / np.sqrt(variance[window])
        return signal

    def _calibrate(self, signal: np.ndarray, y: np.ndarray) -> None:
        """Least-squares ``y ~ intercept + slope * signal`` on the training rows."""
        self.intercept, self.slope = least_squares_line(signal, y)


def two_step_forecast(series: np.ndarray, mean_params: np.ndarray, variance_params: np.ndarray,
                      p: int, start_variance: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-step-ahead conditional mean and variance at every bar of ``series``.

    Parameters
    ----------
    series : np.ndarray
        ``(n,)`` returns in the model's units.
    mean_params : np.ndarray
        ``[const, phi_1, ..., phi_r]`` of the AR(r) mean.
    variance_params : np.ndarray
        ``[omega, alpha_1, ..., alpha_p, beta_1, ..., beta_q]`` of the GARCH(p, q) variance.
    p : int
        Number of ``alpha`` terms.
    start_variance : float
        Squared residuals and variances before the first bar (``arch``'s ``backcast``).

    Returns
    -------
    tuple of np.ndarray
        ``mean[t] = E[x_{t+2} | x_{..t}]`` and ``variance[t] = Var[x_{t+2} | x_{..t}]``
        (innovation variance two steps ahead plus ``phi_1**2`` times the one a step ahead),
        each ``(n,)``, as ``arch``'s ``forecast(horizon=2).mean`` and ``.variance``. Lags
        of the mean before the first bar are the unconditional mean.
    """
    const, phi = float(mean_params[0]), np.asarray(mean_params[1:], dtype=np.float64)
    omega = float(variance_params[0])
    alpha = np.asarray(variance_params[1:1 + p], dtype=np.float64)
    beta = np.asarray(variance_params[1 + p:], dtype=np.float64)
    n, r = len(series), len(phi)
    persistence = float(phi.sum())
    level = const / (1.0 - persistence) if abs(1.0 - persistence) > 1e-6 else 0.0
    padded = np.concatenate([np.full(r, level), np.asarray(series, dtype=np.float64)])

    prior = np.full(n + 1, const)  # prior[t] = E[x_t | t-1], through t = n
    two_step = np.full(n, const)
    for i in range(r):
        prior += phi[i] * padded[r - 1 - i:r - i + n]
        if i:
            two_step += phi[i] * padded[r + 1 - i:r + 1 - i + n]
    if r:
        two_step += phi[0] * prior[1:]
    residual = padded[r:] - prior[:-1]

    squared = residual**2
    sigma2 = np.empty(n + 1)  # sigma2[t] = Var[x_t | t-1], through t = n
    for t in range(n + 1):
        value = omega
        for i, a in enumerate(alpha):
            value += a * (squared[t - 1 - i] if t - 1 - i >= 0 else start_variance)
        for j, b in enumerate(beta):
            value += b * (sigma2[t - 1 - j] if t - 1 - j >= 0 else start_variance)
        sigma2[t] = value
    variance = np.full(n, omega)  # E[e^2_{t+1} | t] = sigma2[t + 1] in alpha_1's term
    for i, a in enumerate(alpha):
        variance += a * (sigma2[1:] if i == 0 else _shifted(squared, i, start_variance, n))
    for j, b in enumerate(beta):
        variance += b * _shifted(sigma2, j, start_variance, n)
    if r:  # the error x_{t+2} - E[x_{t+2} | t] is e_{t+2} + phi_1 e_{t+1}
        variance += phi[0] ** 2 * sigma2[1:]
    return two_step, np.maximum(variance, 1e-12)


def _shifted(values: np.ndarray, k: int, fill: float, n: int) -> np.ndarray:
    """``values[t + 1 - k]`` for t = 0..n-1, ``fill`` where the index is negative."""
    index = np.arange(n) + 1 - k
    return np.where(index >= 0, values[np.maximum(index, 0)], fill)
