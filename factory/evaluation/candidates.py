"""The candidate table the selection decides on: every figure rated from return series.

For each universe (the set of symbols a configuration trades; trials are counted per
universe), the candidates' out-of-sample records (walk-forward joined by live) are rated at
once by `rate_returns`, each record's live part alone gives the live figures, and the
deflated Sharpe ratio takes N = every trial ever run on that universe with the variance of
their Sharpe ratios. The probability of backtest overfitting is computed per universe over
the candidates' common bars. Pure: the callers read the tracking store and the lake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from factory.evaluation.multiple_testing import (
    PBOResult,
    deflated_sharpe,
    pbo_cscv,
    probabilistic_sharpe,
)
from factory.evaluation.rating_engine import rate_returns

RUN_COLUMNS = ("model_name", "version", "stage", "run_id", "spec_id", "lake_version", "config",
               "symbols", "buy_and_hold_sharpe", "fit_seconds", "predict_ms_per_1k",
               "turnover", "directional_accuracy", "periods_per_year", "trained_through")
"""What the candidate table keeps from each version's training run (the rest is re-rated)."""
LIVE_COLUMNS = {"n_obs": "live_n_obs", "sharpe": "live_sharpe",
                "total_return": "live_total_return", "max_drawdown": "live_max_drawdown"}
_MIN_PBO_BARS_PER_BLOCK = 4


@dataclass(frozen=True)
class Universe:
    """What rating one universe needs beyond the return series.

    Attributes
    ----------
    periods_per_year : float
        Bars per year of the stored bar frequency.
    bars_per_day : float
        Bars per day of the universe's calendar (windows are in days).
    trial_sharpes : numpy.ndarray
        Annualised walk-forward Sharpe ratio of every trial ever run on the universe.
    """

    periods_per_year: float
    bars_per_day: float
    trial_sharpes: np.ndarray


@dataclass(frozen=True)
class Candidates:
    """The rated candidates and the evidence behind them.

    Attributes
    ----------
    table : polars.DataFrame
        One row per candidate: the `RUN_COLUMNS`, ``walk_forward_sharpe``, everything
        `rate_returns` gives for the whole record, ``psr`` (vs 0), ``deflated_sharpe``,
        ``n_trials``, ``trials_sharpe_std`` (annualised) and the live figures ``live_*``.
    returns : dict of str to numpy.ndarray
        Each candidate's record on the common timeline ``ts``; NaN where absent.
    ts : numpy.ndarray
        The timeline (union of every record's bars).
    pbo : dict of str to PBOResult or None
        Per universe; None with fewer than 2 candidates or too few common bars.
    """

    table: pl.DataFrame
    returns: dict[str, np.ndarray]
    ts: np.ndarray
    pbo: dict[str, PBOResult | None]


def rate_candidates(versions: pl.DataFrame, records: pl.DataFrame,
                    universes: Mapping[str, Universe], pbo_partitions: int) -> Candidates:
    """Rate every candidate version from its out-of-sample record.

    Parameters
    ----------
    versions : polars.DataFrame
        The registry's latest versions (``Tracker.latest_versions``): `RUN_COLUMNS` and the
        walk-forward ``sharpe``; ``symbols`` names the universe.
    records : polars.DataFrame
        Long table ``model_name, ts, ret, live`` (bool): walk-forward and live returns.
    universes : Mapping of str to Universe
        Keyed by the ``symbols`` string of ``versions``.
    pbo_partitions : int
        Blocks of the combinatorially symmetric cross-validation.

    Returns
    -------
    Candidates
    """
    wide = (records.pivot(on="model_name", index="ts", values="ret", aggregate_function="first")
            .sort("ts"))
    ts = wide["ts"].to_numpy()
    returns = {name: (wide[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
                      if name in wide.columns else np.full(len(ts), np.nan))
               for name in versions["model_name"]}
    live_wide = (records.filter(pl.col("live"))
                 .pivot(on="model_name", index="ts", values="ret", aggregate_function="first")
                 .sort("ts"))
    parts, pbo = [], {}
    for (symbols,), group in versions.group_by("symbols", maintain_order=True):
        universe = universes[symbols]
        names = group["model_name"].to_list()
        matrix = np.column_stack([returns[n] for n in names])
        active = [n for n, s in zip(names, group["stage"], strict=True) if s == "Production"]
        rated = rate_returns(matrix, names, periods_per_year=universe.periods_per_year,
                             bars_per_day=universe.bars_per_day,
                             active=np.column_stack([returns[n] for n in active]) if active
                             else None, active_names=active)
        parts.append(_with_significance(group, rated, universe,
                                         _live(live_wide, names, universe)))
        pbo[symbols] = _pbo(matrix, pbo_partitions)
    table = pl.concat(parts, how="diagonal_relaxed").sort("model_name")
    return Candidates(table, returns, ts, pbo)


def _with_significance(group: pl.DataFrame, rated: pl.DataFrame, universe: Universe,
                       live: pl.DataFrame) -> pl.DataFrame:
    """Join run columns, the rating, PSR and DSR, and the live figures of one universe."""
    per_bar = np.sqrt(universe.periods_per_year)
    trials = universe.trial_sharpes[np.isfinite(universe.trial_sharpes)] / per_bar
    n_trials = max(int(trials.size), 1)
    variance = float(np.var(trials, ddof=1)) if trials.size > 1 else 0.0
    sr = (rated["sharpe"] / per_bar).to_numpy()
    moments = [rated[c].to_numpy() for c in ("n_obs", "skew", "kurtosis")]
    rated = rated.with_columns(
        pl.Series("psr", probabilistic_sharpe(sr, *moments, benchmark=0.0)).fill_nan(None),
        pl.Series("deflated_sharpe", deflated_sharpe(sr, *moments, n_trials, variance)
                  ).fill_nan(None),
        pl.lit(n_trials).alias("n_trials"),
        pl.lit(float(np.sqrt(variance)) * per_bar).alias("trials_sharpe_std"),
    )
    kept = group.select(*[c for c in RUN_COLUMNS if c in group.columns],
                        pl.col("sharpe").alias("walk_forward_sharpe"))
    return kept.join(rated, on="model_name").join(live, on="model_name", how="left")


def _live(live_wide: pl.DataFrame, names: list[str], universe: Universe) -> pl.DataFrame:
    """``live_*`` figures and ``live_psr`` of each name's live record (0 bars when none)."""
    present = [n for n in names if n in live_wide.columns]
    if not present or live_wide.is_empty():
        return pl.DataFrame({"model_name": names, "live_n_obs": [0.0] * len(names)})
    matrix = np.column_stack([live_wide[n].cast(pl.Float64).fill_null(np.nan).to_numpy()
                              for n in present])
    rated = rate_returns(matrix, present, periods_per_year=universe.periods_per_year,
                         bars_per_day=universe.bars_per_day)
    sr = (rated["sharpe"] / np.sqrt(universe.periods_per_year)).to_numpy()
    psr = probabilistic_sharpe(sr, *(rated[c].to_numpy() for c in ("n_obs", "skew", "kurtosis")),
                               benchmark=0.0)
    live = rated.select("model_name", *(pl.col(k).alias(v) for k, v in LIVE_COLUMNS.items()),
                        pl.Series("live_psr", psr).fill_nan(None))
    absent = pl.DataFrame({"model_name": [n for n in names if n not in present]},
                          schema={"model_name": pl.String})
    return pl.concat([live, absent], how="diagonal").with_columns(
        pl.col("live_n_obs").fill_null(0.0))


def _pbo(matrix: np.ndarray, partitions: int) -> PBOResult | None:
    """PBO over the bars every candidate has; None when it is not defined."""
    common = matrix[np.isfinite(matrix).all(axis=1)]
    if matrix.shape[1] < 2 or len(common) < partitions * _MIN_PBO_BARS_PER_BLOCK:
        return None
    return pbo_cscv(common, n_partitions=partitions)
