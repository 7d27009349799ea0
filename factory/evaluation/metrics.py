"""Trading and prediction metrics for out-of-sample strategy returns.

Timing conventions (see ``factory.training.splits``): a signal formed at bar ``t``'s close trades
at bar ``t + 1``; ``label_t = p[t + 2] / p[t + 1] - 1``; the strategy return of decision ``t`` is
``position_t * label_t`` minus ``cost_bps / 1e4 * |position_t - position_{t-1}|``. Each return
here is one such per-bar, net-of-cost strategy return.

NaN returns mean "no out-of-sample prediction at this bar" and are dropped before computing
trading metrics; Sharpe-like ratios use the sample standard deviation (``ddof=1``) and are 0 when
it is (numerically) zero. Ratios that would be infinite (no losses) are capped at `METRIC_CAP`
so that tables, ranks and trackers only ever see finite numbers.

Annualising takes the symbol's stored bar frequency (``BarFrequency.periods_per_year`` from
``factory.data.frequency``, carried by the training ``DatasetRef``), never a count of bars
(rule 10): two bars a day from two stitched daily files would otherwise inflate every Sharpe
ratio by sqrt(2).
"""

import numpy as np

METRIC_CAP = 1e6
ROLLING_WINDOWS = (30, 60, 90)
_ZERO_STD = 1e-12


def equity_and_drawdown(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compounded equity curve and drawdown from its running peak.

    Parameters
    ----------
    returns : numpy.ndarray
        Per-bar returns; NaN counts as a flat bar (return 0) so the curves stay aligned with
        the input.

    Returns
    -------
    equity : numpy.ndarray
        ``cumprod(1 + r)``, starting capital 1.
    drawdown : numpy.ndarray
        ``1 - equity / peak`` as a positive fraction, where the peak includes the starting
        capital (a first-bar loss is a drawdown).
    """
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64), nan=0.0)
    equity = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    return equity, 1.0 - equity / peak


def _sharpe(mean: np.ndarray, std: np.ndarray, periods_per_year: float) -> np.ndarray:
    """Annualised mean / std, 0 where std is numerically zero."""
    ok = std > _ZERO_STD
    ratio = np.divide(mean, std, out=np.zeros_like(mean, dtype=np.float64), where=ok)
    return ratio * np.sqrt(periods_per_year)


def _longest_recovery(returns: np.ndarray) -> int:
    """Longest bars from a peak until equity is back at it (or until the end if never)."""
    equity = np.concatenate(([1.0], np.cumprod(1.0 + returns)))
    at_peak = equity >= np.maximum.accumulate(equity)
    last_peak = np.maximum.accumulate(np.where(at_peak, np.arange(equity.size), 0))
    recovered = np.flatnonzero(at_peak[1:] & ~at_peak[:-1]) + 1
    durations = (recovered - last_peak[recovered - 1]).tolist()
    if not at_peak[-1]:
        durations.append(equity.size - 1 - last_peak[-1])
    return int(max(durations, default=0))


def _rolling_sharpes(returns: np.ndarray, periods_per_year: float) -> dict[str, float]:
    """Sharpe over the last ``w`` bars and the worst ``w``-bar window, NaN if too short."""
    out = {}
    for window in ROLLING_WINDOWS:
        if returns.size < window:
            out[f"rolling_sharpe_{window}"] = out[f"rolling_sharpe_{window}_min"] = np.nan
            continue
        windows = np.lib.stride_tricks.sliding_window_view(returns, window)
        sharpe = _sharpe(windows.mean(axis=1), windows.std(axis=1, ddof=1), periods_per_year)
        out[f"rolling_sharpe_{window}"] = float(sharpe[-1])
        out[f"rolling_sharpe_{window}_min"] = float(sharpe.min())
    return out


def trading_metrics(
    returns: np.ndarray, periods_per_year: float, positions: np.ndarray | None = None
) -> dict[str, float]:
    """Performance summary of a strategy's per-bar net returns.

    Parameters
    ----------
    returns : numpy.ndarray
        Per-bar net strategy returns; NaN entries are dropped.
    periods_per_year : float
        Bars per year, from the stored bar frequency (``BarFrequency.periods_per_year``),
        used to annualise.
    positions : numpy.ndarray, optional
        Positions behind the returns; adds ``turnover``, the mean ``|position_t -
        position_{t-1}|`` per bar starting flat.

    Returns
    -------
    dict of str to float
        ``sharpe``, ``sortino`` (mean over downside deviation, annualised; `METRIC_CAP` when
        there are no losses but a positive mean), ``cagr``, ``total_return``, ``volatility``
        (annualised), ``max_drawdown`` (positive fraction of compounded equity),
        ``recovery_bars`` (longest peak-to-recovery span; an unrecovered drawdown counts until
        the last bar), ``win_rate`` (positive share of nonzero returns, 0 if none),
        ``profit_factor`` (gains / losses, `METRIC_CAP` when there are gains and no losses, 0
        with no gains), ``n_obs``, ``rolling_sharpe_{30,60,90}`` (last window) and
        ``rolling_sharpe_{30,60,90}_min`` (worst window; NaN when there are fewer bars), and
        ``turnover`` when positions are given. With no finite returns every value but
        ``n_obs`` (0) and ``turnover`` is NaN.

    Raises
    ------
    ValueError
        If ``periods_per_year`` is not positive.
    """
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    out = _return_metrics(r, periods_per_year) if r.size else _empty_metrics()
    if positions is not None:
        pos = np.asarray(positions, dtype=np.float64)
        out["turnover"] = float(np.nanmean(np.abs(np.diff(pos, prepend=0.0)))) if pos.size else 0.0
    return out


def _empty_metrics() -> dict[str, float]:
    """Metric dict for a strategy without a single finite return."""
    names = ["sharpe", "sortino", "cagr", "total_return", "volatility", "max_drawdown"]
    names += ["recovery_bars", "win_rate", "profit_factor"]
    names += [f"rolling_sharpe_{w}{s}" for w in ROLLING_WINDOWS for s in ("", "_min")]
    return {**dict.fromkeys(names, np.nan), "n_obs": 0.0}


def _return_metrics(r: np.ndarray, periods_per_year: float) -> dict[str, float]:
    """Metrics for a non-empty array of finite returns."""
    mean = r.mean()
    std = r.std(ddof=1) if r.size > 1 else 0.0
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    if downside > _ZERO_STD:
        sortino = mean / downside * np.sqrt(periods_per_year)
    else:
        sortino = METRIC_CAP if mean > 0 else 0.0
    equity, drawdown = equity_and_drawdown(r)
    final = equity[-1]
    cagr = final ** (periods_per_year / r.size) - 1.0 if final > 0 else -1.0
    gains, losses = r[r > 0].sum(), -r[r < 0].sum()
    if losses > 0:
        profit_factor = min(gains / losses, METRIC_CAP)
    else:
        profit_factor = METRIC_CAP if gains > 0 else 0.0
    n_nonzero = np.count_nonzero(r)
    return {
        "sharpe": float(_sharpe(np.array(mean), np.array(std), periods_per_year)),
        "sortino": float(sortino),
        "cagr": float(cagr),
        "total_return": float(final - 1.0),
        "volatility": float(std * np.sqrt(periods_per_year)),
        "max_drawdown": float(drawdown.max()),
        "recovery_bars": float(_longest_recovery(r)),
        "win_rate": float(np.sum(r > 0) / n_nonzero) if n_nonzero else 0.0,
        "profit_factor": float(profit_factor),
        "n_obs": float(r.size),
        **_rolling_sharpes(r, periods_per_year),
    }


def prediction_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy of predictions against realised labels, on pairs where both are finite.

    Parameters
    ----------
    pred, y : numpy.ndarray
        Predictions and labels of the same shape.

    Returns
    -------
    dict of str to float
        ``mse``, ``mae``, ``r2`` (``1 - SSE / SST``; NaN when ``y`` is constant) and
        ``directional_accuracy`` (share of sign agreement where ``y != 0``; NaN if none).
        All NaN when no pair is finite.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred {p.shape} and y {t.shape} must have the same shape")
    keep = np.isfinite(p) & np.isfinite(t)
    p, t = p[keep], t[keep]
    if not p.size:
        return dict.fromkeys(("mse", "mae", "r2", "directional_accuracy"), np.nan)
    error = p - t
    sse = float(np.sum(error**2))
    sst = float(np.sum((t - t.mean()) ** 2))
    nonzero = t != 0
    return {
        "mse": sse / p.size,
        "mae": float(np.mean(np.abs(error))),
        "r2": 1.0 - sse / sst if sst > 0 else np.nan,
        "directional_accuracy": (
            float(np.mean(np.sign(p[nonzero]) == np.sign(t[nonzero]))) if nonzero.any() else np.nan
        ),
    }
