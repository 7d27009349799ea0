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

The computation itself lives in ``factory.evaluation.rating_engine``, one implementation for
one series and for a matrix of candidates; `METRIC_CAP` and `equity_and_drawdown` come from
there too.
"""

import numpy as np

from factory.evaluation.rating_engine import (
    METRIC_CAP,
    ROLLING_DAYS,
    equity_and_drawdown,
    rate_returns,
)

__all__ = ["METRIC_CAP", "equity_and_drawdown", "prediction_metrics", "trading_metrics"]

_TRADING_METRICS = ("sharpe", "sortino", "cagr", "total_return", "volatility", "max_drawdown",
                    "recovery_bars", "win_rate", "profit_factor", "n_obs")


def trading_metrics(
    returns: np.ndarray, periods_per_year: float, positions: np.ndarray | None = None
) -> dict[str, float]:
    """Performance summary of a strategy's per-bar net returns.

    One series rated by `factory.evaluation.rating_engine.rate_returns` (the single
    implementation), with rolling windows counted in bars rather than days.

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
        with no gains), ``n_obs``, ``rolling_sharpe_{30,60,90}`` (last window of that many
        bars) and ``rolling_sharpe_{30,60,90}_min`` (worst window; NaN when there are fewer
        bars), and ``turnover`` when positions are given. With no finite returns every value
        but ``n_obs`` (0) and ``turnover`` is NaN.

    Raises
    ------
    ValueError
        If ``periods_per_year`` is not positive.
    """
    r = np.asarray(returns, dtype=np.float64).reshape(-1, 1)
    rated = rate_returns(r, ["strategy"], periods_per_year=periods_per_year, bars_per_day=1.0)
    row = rated.row(0, named=True)
    out = {name: float(row[name]) for name in _TRADING_METRICS}
    for bars in ROLLING_DAYS:  # one bar a day: a window of D days is D bars
        for suffix in ("", "_min"):
            out[f"rolling_sharpe_{bars}{suffix}"] = float(row[f"rolling_sharpe_{bars}d{suffix}"])
    if positions is not None:
        pos = np.asarray(positions, dtype=np.float64)
        out["turnover"] = float(np.nanmean(np.abs(np.diff(pos, prepend=0.0)))) if pos.size else 0.0
    return out


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
