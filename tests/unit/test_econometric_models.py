"""GARCH, Holt-Winters and VAR against their libraries' own forecasts, and their edges.

The contract tests (tests/contract/test_models.py) check what every model must do; these
check that each model's own recursion is the library's forecast, that a segment's first
rows read nothing after them, and how the VAR handles assets that start at different times.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from arch import arch_model
from statsmodels.tsa.vector_ar.var_model import VAR

from model_zoo.base import TARGET_FEATURE, ModelConfig, SupervisedData
from model_zoo.econometric.garch import GARCHModel, two_step_forecast
from model_zoo.econometric.holt_winters import HoltWintersModel
from model_zoo.econometric.var import VARModel

FEATURES = (TARGET_FEATURE, "noise_feature")
LOOKBACK = 8


def _windows(returns: np.ndarray, start: np.ndarray | None = None) -> SupervisedData:
    """Windows of a ``(T, K)`` return panel: asset ``k`` from bar ``start[k]``, label
    ``r_{t+2}``, times the bar positions (so assets line up by bar)."""
    n_bars, n_assets = returns.shape
    start = np.zeros(n_assets, dtype=int) if start is None else start
    noise = np.random.default_rng(1).normal(size=returns.shape)
    parts = []
    for k in range(n_assets):
        features = np.column_stack([returns[start[k]:, k], noise[start[k]:, k]])
        ends = np.arange(LOOKBACK - 1, len(features) - 2)
        X = np.lib.stride_tricks.sliding_window_view(features, LOOKBACK, axis=0)
        X = X.transpose(0, 2, 1)[: len(ends)]
        parts.append((X, returns[start[k] + ends + 2, k], np.full(len(ends), k),
                      start[k] + ends))
    X, y, groups, times = (np.concatenate(p) for p in zip(*parts, strict=True))
    return SupervisedData(X=X.astype(np.float64), y=y, groups=groups, times=times)


def _ar_panel(n_bars: int = 1500, n_assets: int = 2, seed: int = 3) -> np.ndarray:
    """Cross-lagged VAR(1) returns: asset 1 follows asset 0's last return."""
    rng = np.random.default_rng(seed)
    A = np.array([[0.4, 0.0], [0.3, 0.2]])[:n_assets, :n_assets]
    returns = np.zeros((n_bars, n_assets))
    for t in range(1, n_bars):
        returns[t] = A @ returns[t - 1] + rng.normal(size=n_assets)
    return returns


def _garch_series(n: int = 800, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, variance = np.zeros(n), 1.0
    for t in range(2, n):
        variance = 0.1 + 0.15 * (x[t - 1] - 0.3 * x[t - 2]) ** 2 + 0.8 * variance
        x[t] = 0.3 * x[t - 1] + 0.1 * x[t - 2] + np.sqrt(variance) * rng.standard_normal()
    return x


def _config(**hparams) -> ModelConfig:
    return ModelConfig(hparams=hparams, feature_names=FEATURES, lookback=LOOKBACK)


@pytest.mark.parametrize(("lags", "p", "q", "dist"),
                         [(1, 1, 1, "normal"), (2, 1, 1, "t"), (3, 2, 2, "normal"),
                          (0, 1, 1, "normal"), (1, 1, 0, "normal"), (1, 1, 1, "skewt"),
                          (2, 1, 1, "ged")])
def test_garch_recursion_is_archs_two_step_forecast(lags, p, q, dist):
    """Mean and forecast-error variance two steps ahead at every bar equal
    ``ARCHModelFixedResult.forecast(horizon=2)`` given the same starting variance."""
    x = _garch_series()
    params = arch_model(x, mean="AR", lags=lags, vol="GARCH", p=p, q=q, dist=dist,
                        rescale=False).fit(disp="off").params.to_numpy()
    level = params[0] / (1 - params[1:1 + lags].sum())
    padded = np.concatenate([np.full(lags, level), x])  # the lags before the first bar
    model = arch_model(padded, mean="AR", lags=lags, vol="GARCH", p=p, q=q, dist=dist,
                       rescale=False)
    forecast = model.fix(params).forecast(horizon=2, start=lags, reindex=False)
    backcast = model.volatility.backcast(model.resids(params[:1 + lags]))
    variance_params = params[1 + lags:2 + lags + p + q]  # without the shape parameters
    mean, variance = two_step_forecast(x, params[:1 + lags], variance_params, p, backcast)
    np.testing.assert_allclose(mean, forecast.mean["h.2"].to_numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(variance, forecast.variance["h.2"].to_numpy(), rtol=1e-10)


def _planted_ar1(scale: float = 1.0) -> tuple[SupervisedData, SupervisedData]:
    returns = scale * _ar_panel(n_bars=3000, n_assets=1)[:, :1] / 0.4 * 0.5
    data = _windows(returns)
    cut = 2000
    return (SupervisedData(X=data.X[:cut], y=data.y[:cut]),
            SupervisedData(X=data.X[cut + 2:], y=data.y[cut + 2:]))


@pytest.mark.parametrize("model_class", [GARCHModel, HoltWintersModel])
def test_first_rows_of_a_series_read_nothing_after_them(model_class):
    """The recursions start from stored state, not from a backcast of the series' first
    bars: the first rows' forecasts are the same given 5 rows or all of them."""
    train, test = _planted_ar1()
    model = model_class(_config()).fit(train)
    np.testing.assert_allclose(model.predict(test.X[:5]), model.predict(test.X)[:5],
                               rtol=1e-12, atol=1e-15)


def test_garch_rescales_raw_returns_to_unit_variance():
    """Raw daily-like returns (std 0.01) are rescaled by about 100, with no
    DataScaleWarning, and the forecasts follow the signal as on standardised inputs."""
    train, test = _planted_ar1(scale=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = GARCHModel(_config()).fit(train)
    assert 50 < model.scale < 200
    assert np.corrcoef(model.predict(test.X), test.y)[0, 1] > 0.1


@pytest.mark.parametrize("hparams", [{}, {"damped": True}, {"seasonal": "add"},
                                     {"seasonal": "add", "damped": True,
                                      "seasonal_periods": 3}])
def test_holt_winters_is_statsmodels_level_change_forecast(hparams):
    """At bar t the forecast is ``forecast(2)[1] - forecast(2)[0]`` of statsmodels'
    smoother of the level up to t, with the stored parameters."""
    train, test = _planted_ar1()
    model = HoltWintersModel(_config(**hparams)).fit(train)
    series = np.concatenate([test.X[0, :, 0], test.X[1:, -1, 0]])
    level = np.cumsum(series)
    change = model.level_change_forecast(level)
    assert model.level_change_forecast(level[:1])[0] == change[0]
    for t in (1, 7, 150, len(level) - 1):  # statsmodels takes no one-bar series
        results = model.smoother(level[: t + 1]).fit(optimized=False, **model.smoothing)
        expected = results.forecast(2)
        assert change[t] == pytest.approx(expected[1] - expected[0], rel=1e-9, abs=1e-12)


def test_holt_winters_rejects_an_unknown_seasonal():
    with pytest.raises(ValueError, match="seasonal must be one of"):
        HoltWintersModel(_config(seasonal="mul"))


@pytest.mark.parametrize("hparams", [{}, {"lags": 3}, {"trend": "n"}])
def test_var_is_statsmodels_two_step_forecast(hparams):
    """Coefficients are statsmodels' OLS on the panel; the forecast at t equals
    ``VARResults.forecast(Y[t-p+1..t], steps=2)[-1]``."""
    returns = _ar_panel()
    model = VARModel(_config(**hparams)).fit(_windows(returns))
    sample = returns[LOOKBACK - 1:len(returns) - 2]  # the training windows' last bars
    expected_lags = hparams.get("lags") or max(1, VAR(sample).select_order(
        maxlags=5, trend=hparams.get("trend", "c")).selected_orders["aic"])
    assert model.lags == expected_lags
    results = VAR(sample).fit(model.lags, trend=hparams.get("trend", "c"))
    np.testing.assert_allclose(model.coefs, results.coefs, rtol=1e-10)
    forecast = model.two_step_forecast(sample)
    assert np.isnan(forecast[: model.lags - 1]).all()
    for t in (model.lags - 1, 100, len(sample) - 1):
        np.testing.assert_allclose(
            forecast[t], results.forecast(sample[t - model.lags + 1:t + 1], steps=2)[-1],
            rtol=1e-10)


def test_var_learns_the_cross_asset_lag():
    """Asset 1 follows asset 0: the VAR's forecast of asset 1 uses asset 0's returns."""
    data = _windows(_ar_panel(n_bars=3000))
    model = VARModel(_config(lags=1)).fit(data)
    assert model.coefs[0][1, 0] == pytest.approx(0.3, abs=0.05)
    assert np.corrcoef(model.predict(data.X, data.groups, data.times), data.y)[0, 1] > 0.1


def test_var_assets_with_different_start_dates():
    """Fit on the times where both assets are present; before asset 1 starts, asset 0's
    forecast falls back to its unconditional mean (lags of asset 1 are missing)."""
    returns = _ar_panel()
    data = _windows(returns, start=np.array([0, 400]))
    model = VARModel(_config(lags=2)).fit(data)
    complete = returns[400 + LOOKBACK - 1:len(returns) - 2]
    np.testing.assert_allclose(model.coefs, VAR(complete).fit(2).coefs, rtol=1e-10)
    pred = model.predict(data.X, data.groups, data.times)
    early = (data.groups == 0) & (data.times < 400 + LOOKBACK)  # asset 1's first rows + 1
    mean = model.intercept + model.slope * model.mean[0]
    np.testing.assert_allclose(pred[early], mean)
    assert np.unique(pred[~early]).size == int((~early).sum())


def test_var_refuses_unknown_assets_and_a_single_asset():
    data = _windows(_ar_panel())
    model = VARModel(_config()).fit(data)
    with pytest.raises(ValueError, match=r"assets \[5\] were not in the training panel"):
        model.predict(data.X, np.full(len(data.y), 5), data.times)
    one = data.groups == 0
    single = SupervisedData(X=data.X[one], y=data.y[one], groups=data.groups[one])
    with pytest.raises(ValueError, match="at least 2 assets"):
        VARModel(_config()).fit(single)
