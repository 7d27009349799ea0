"""The vectorised rating engine against a plain per-series computation, column by column."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from factory.evaluation.rating_engine import COLUMNS, METRIC_CAP, ROLLING_DAYS, rate_returns

PERIODS = 252.0
N_BARS = 400


def _matrix() -> tuple[np.ndarray, list[str]]:
    """Candidates with different NaN patterns and the awkward cases of the conventions, then
    enough plain ones, starting late and with gaps, to fill several blocks of the engine."""
    rng = np.random.default_rng(7)
    base = rng.normal(0.0005, 0.01, (N_BARS, 10))
    base[:150, 1] = np.nan  # starts late
    base[rng.random(N_BARS) < 0.25, 2] = np.nan  # gaps
    base[:, 3] = np.nan  # never predicted
    base[:, 4] = 0.001  # constant
    base[:, 5] = np.abs(base[:, 5])  # no losses
    base[np.arange(N_BARS) % 8 != 0, 6] = np.nan  # 50 returns: no 60- or 90-bar window
    base[:, 7] -= 0.004  # a drawdown that never recovers
    base[[0, 9, 200], 8] = [np.inf, -np.inf, np.nan]  # non-finite values are dropped too
    base[rng.random(N_BARS) < 0.3, 9] = 0.0  # flat bars are not trades
    base[:2, 9] = np.nan
    names = ["full", "late", "gaps", "empty", "constant", "no_losses", "short", "sinking",
             "infinite", "zeros"]
    plain = rng.normal(0.0, 0.01, (N_BARS, 60))
    plain[np.arange(N_BARS)[:, None] < rng.integers(0, N_BARS, 60)] = np.nan
    plain[rng.random(plain.shape) < 0.1] = np.nan
    return np.column_stack([base, plain]), names + [f"plain_{i}" for i in range(60)]


def _sharpe(mean: float, std: float) -> float:
    return mean / std * np.sqrt(PERIODS) if std > 1e-12 else 0.0


def _longest_recovery(equity: np.ndarray) -> int:
    """Longest span from a peak (starting capital included) back to it, or to the end."""
    peak_value, peak_bar, longest = 1.0, 0, 0
    for bar, value in enumerate(equity, start=1):
        if value >= peak_value:
            if bar - peak_bar > 1:
                longest = max(longest, bar - peak_bar)
            peak_value, peak_bar = value, bar
    return max(longest, len(equity) - peak_bar)


def _reference(column: np.ndarray, bars_per_day: float) -> dict[str, float]:
    """Every metric of one series, computed directly on its finite returns."""
    r = column[np.isfinite(column)]
    out: dict[str, float] = {"n_obs": float(r.size)}
    if not r.size:
        return out
    s = pd.Series(r)
    mean, std = s.mean(), (s.std(ddof=1) if r.size > 1 else 0.0)
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    equity = (1.0 + s).cumprod().to_numpy()
    drawdown = 1.0 - equity / np.maximum(np.maximum.accumulate(equity), 1.0)
    gains, losses = r[r > 0].sum(), -r[r < 0].sum()
    out |= {
        "sharpe": _sharpe(mean, std),
        "sortino": (mean / downside * np.sqrt(PERIODS) if downside > 1e-12
                    else (METRIC_CAP if mean > 0 else 0.0)),
        "cagr": equity[-1] ** (PERIODS / r.size) - 1.0,
        "total_return": equity[-1] - 1.0,
        "volatility": std * np.sqrt(PERIODS),
        "max_drawdown": drawdown.max(),
        "recovery_bars": _longest_recovery(equity),
        "recovery_days": _longest_recovery(equity) / bars_per_day,
        "win_rate": np.sum(r > 0) / np.count_nonzero(r) if np.count_nonzero(r) else 0.0,
        "profit_factor": (min(gains / losses, METRIC_CAP) if losses > 0
                          else (METRIC_CAP if gains > 0 else 0.0)),
        "mean": mean,
        "std": std,
        "skew": stats.skew(r) if r.size >= 3 and std > 1e-12 else np.nan,
        "kurtosis": stats.kurtosis(r, fisher=False) if r.size >= 3 and std > 1e-12 else np.nan,
    }
    for days in ROLLING_DAYS:
        window = max(2, round(days * bars_per_day))
        sharpes = [_sharpe(r[end - window:end].mean(), r[end - window:end].std(ddof=1))
                   for end in range(window, r.size + 1)]
        out[f"rolling_sharpe_{days}d"] = sharpes[-1] if sharpes else np.nan
        out[f"rolling_sharpe_{days}d_min"] = min(sharpes) if sharpes else np.nan
    return out


@pytest.mark.parametrize("bars_per_day", [1.0, 2.5])
def test_every_column_matches_a_per_series_computation(bars_per_day):
    returns, names = _matrix()
    rated = rate_returns(returns, names, periods_per_year=PERIODS, bars_per_day=bars_per_day)
    assert rated["model_name"].to_list() == names
    assert rated.columns[:2] == ["model_name", "n_obs"]
    metric_columns = [c for c in rated.columns if c not in ("model_name",)
                      and not c.startswith("corr_active")]
    for i, name in enumerate(names):
        expected = _reference(returns[:, i], bars_per_day)
        row = rated.row(i, named=True)
        for column in metric_columns:
            np.testing.assert_allclose(
                row[column], expected.get(column, np.nan), rtol=1e-9, atol=1e-12,
                err_msg=f"{name}.{column}")


def test_the_awkward_columns_follow_the_conventions():
    returns, names = _matrix()
    rated = rate_returns(returns, names, periods_per_year=PERIODS, bars_per_day=1.0)
    row = {name: rated.row(i, named=True) for i, name in enumerate(names)}
    assert row["empty"]["n_obs"] == 0 and np.isnan(row["empty"]["sharpe"])
    assert np.isnan(row["empty"]["win_rate"]) and row["empty"]["corr_active_with"] is None
    assert row["constant"]["sharpe"] == 0.0 and np.isnan(row["constant"]["skew"])
    assert row["no_losses"]["profit_factor"] == row["no_losses"]["sortino"] == METRIC_CAP
    assert row["short"]["n_obs"] == 50 and np.isnan(row["short"]["rolling_sharpe_60d"])
    assert row["infinite"]["n_obs"] == N_BARS - 3
    assert row["sinking"]["recovery_bars"] > 0


def test_skew_and_kurtosis_are_scipys_population_moments():
    r = np.random.default_rng(3).standard_t(4, (500, 3)) * 0.01
    r[:40, 1] = np.nan
    rated = rate_returns(r, ["a", "b", "c"], periods_per_year=PERIODS, bars_per_day=1.0)
    for i in range(3):
        finite = r[np.isfinite(r[:, i]), i]
        assert rated["skew"][i] == pytest.approx(stats.skew(finite), rel=1e-9)
        assert rated["kurtosis"][i] == pytest.approx(
            stats.kurtosis(finite, fisher=False), rel=1e-9)


def test_rolling_windows_span_days_of_bars_per_day():
    r = np.random.default_rng(11).normal(0.0, 0.01, (400, 1))
    rated = rate_returns(r, ["m"], periods_per_year=PERIODS * 4, bars_per_day=4.0).row(
        0, named=True)
    for days, bars in ((30, 120), (60, 240), (90, 360)):
        last = r[-bars:, 0]
        expected = last.mean() / last.std(ddof=1) * np.sqrt(PERIODS * 4)
        assert rated[f"rolling_sharpe_{days}d"] == pytest.approx(expected, rel=1e-9)
    assert rated["recovery_days"] == rated["recovery_bars"] / 4
    short = rate_returns(r[:300], ["m"], periods_per_year=PERIODS * 4, bars_per_day=4.0)
    assert np.isnan(short["rolling_sharpe_90d"][0]) and np.isfinite(short["rolling_sharpe_60d"][0])
    tiny = rate_returns(r, ["m"], periods_per_year=PERIODS, bars_per_day=0.01)  # 2-bar windows
    expected = r[-2:, 0].mean() / r[-2:, 0].std(ddof=1) * np.sqrt(PERIODS)
    assert tiny["rolling_sharpe_30d"][0] == pytest.approx(expected, rel=1e-9)


def _pair_corr(x: np.ndarray, y: np.ndarray) -> float:
    both = np.isfinite(x) & np.isfinite(y)
    if both.sum() < 3 or np.std(x[both]) == 0 or np.std(y[both]) == 0:
        return np.nan
    return float(np.corrcoef(x[both], y[both])[0, 1])


def test_correlation_with_the_active_set_skips_itself_and_names_the_closest():
    rng = np.random.default_rng(5)
    active = rng.normal(0.0, 0.01, (300, 3))
    active[:100, 2] = np.nan
    active_names = ["a", "b", "c"]
    candidates = np.column_stack([
        active[:, 1] + rng.normal(0.0, 0.003, 300),  # close to b
        active[:, 0],  # is "a" itself: a must not count
        rng.normal(0.0, 0.01, 300),
        np.where(np.arange(300) < 298, np.nan, 0.01),  # two bars: nothing defined
    ])
    candidates[rng.random(300) < 0.2, 2] = np.nan
    names = ["near_b", "a", "other", "brief"]
    rated = rate_returns(candidates, names, periods_per_year=PERIODS, bars_per_day=1.0,
                         active=active, active_names=active_names)
    assert rated["corr_active_with"].to_list()[:2] == ["b", "b"]
    assert rated["corr_active_with"][3] is None and np.isnan(rated["corr_active_max"][3])
    for i, name in enumerate(names[:3]):
        corr = [_pair_corr(candidates[:, i], active[:, j])
                for j, other in enumerate(active_names) if other != name]
        assert rated["corr_active_max"][i] == pytest.approx(np.nanmax(corr), rel=1e-9)
        assert rated["corr_active_mean"][i] == pytest.approx(np.nanmean(corr), rel=1e-9)
    assert rated["corr_active_max"][1] < 0.5  # its correlation of 1 with itself is skipped
    alone = rate_returns(candidates, names, periods_per_year=PERIODS, bars_per_day=1.0)
    assert alone["corr_active_max"].is_nan().all() and alone["corr_active_with"].null_count() == 4


def test_no_bars_and_no_candidates():
    rated = rate_returns(np.empty((0, 2)), ["a", "b"], periods_per_year=PERIODS, bars_per_day=1.0)
    assert rated["n_obs"].to_list() == [0, 0] and rated["sharpe"].is_nan().all()
    none = rate_returns(np.empty((5, 0)), [], periods_per_year=PERIODS, bars_per_day=1.0)
    assert none.columns == list(COLUMNS) and none.height == 0


def test_bad_arguments_are_refused():
    r = np.zeros((10, 2))
    with pytest.raises(ValueError, match="3 names"):
        rate_returns(r, ["a", "b", "c"], periods_per_year=PERIODS, bars_per_day=1.0)
    with pytest.raises(ValueError, match="bars_per_day"):
        rate_returns(r, ["a", "b"], periods_per_year=PERIODS, bars_per_day=0.0)
    with pytest.raises(ValueError, match="periods_per_year"):
        rate_returns(r, ["a", "b"], periods_per_year=-1.0, bars_per_day=1.0)
    with pytest.raises(ValueError, match="active"):
        rate_returns(r, ["a", "b"], periods_per_year=PERIODS, bars_per_day=1.0,
                     active=np.zeros((9, 1)), active_names=["x"])
