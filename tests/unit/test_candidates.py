"""Rating candidates from their return series, then selecting: noise promotes nothing and
says why; a planted signal reaches Production and the strongest of a correlated group stays;
a live record that turns bad shows in the live figures the gate reads."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from factory.config import load_config
from factory.evaluation.candidates import Universe, rate_candidates
from factory.selection import select

DAILY = 252.0
POLICY = load_config("demo").selection


def _records(returns: dict[str, np.ndarray], live: dict[str, np.ndarray] | None = None
             ) -> pl.DataFrame:
    """Long records: each series on consecutive days, live bars following the walk-forward."""
    start = datetime(2020, 1, 1)
    frames = []
    for name, series in returns.items():
        ts = [start + timedelta(days=i) for i in range(len(series))]
        frames.append(pl.DataFrame({"model_name": name, "ts": ts, "ret": series, "live": False}))
        if live and name in live:
            after = [ts[-1] + timedelta(days=i + 1) for i in range(len(live[name]))]
            frames.append(pl.DataFrame({"model_name": name, "ts": after, "ret": live[name],
                                        "live": True}))
    return pl.concat(frames).with_columns(pl.col("ts").cast(pl.Datetime("us")))


def _versions(names: list[str], sharpe: dict[str, float], stage: str = "None") -> pl.DataFrame:
    n = len(names)
    return pl.DataFrame({
        "model_name": names, "version": ["1"] * n, "stage": [stage] * n,
        "run_id": [f"run-{x}" for x in names], "spec_id": names, "lake_version": ["3"] * n,
        "config": names, "symbols": ["AAA,BBB"] * n, "buy_and_hold_sharpe": [0.3] * n,
        "fit_seconds": [1.0] * n, "sharpe": [sharpe[x] for x in names],
    })


def _rate(returns, live=None, stage="None"):
    names = sorted(returns)
    annual = {x: float(np.mean(r) / np.std(r, ddof=1) * np.sqrt(DAILY))
              for x, r in returns.items()}
    universe = Universe(DAILY, 1.0, np.array(list(annual.values())))
    return rate_candidates(_versions(names, annual, stage), _records(returns, live),
                           {"AAA,BBB": universe}, pbo_partitions=16)


def test_pure_noise_promotes_nothing_and_says_why():
    rng = np.random.default_rng(5)
    returns = {f"noise-{i:03d}": rng.normal(0, 0.01, 1000) for i in range(200)}
    rated = _rate(returns)
    table = rated.table
    assert table["sharpe"].max() > 1.0  # the best of 200 noise series looks good ...
    assert table["psr"].max() > 0.95   # ... and a naive significance test agrees
    assert table["n_trials"].unique().to_list() == [200]
    result = select(table, rated.returns, POLICY)
    assert result.production == []
    best = table["deflated_sharpe"].max()
    assert best < POLICY.gates.min_deflated_sharpe
    assert result.headline.startswith(
        f"no configuration clears the deflated-Sharpe gate: best {best:.2f} < 0.95 "
        "(N=200 trials)")
    pbo = rated.pbo["AAA,BBB"]  # its values are tested in test_multiple_testing.py
    assert pbo is not None and (pbo.n_candidates, pbo.n_bars_used) == (200, 992)


def test_a_planted_signal_is_promoted_and_the_strongest_of_its_group_kept():
    rng = np.random.default_rng(6)
    signal = rng.normal(0.003, 0.01, 1000)  # per-bar Sharpe 0.3, annualised about 4.8
    returns = {f"noise-{i:02d}": rng.normal(0, 0.01, 1000) for i in range(40)}
    # The same signal, diluted by noise: correlated above 0.9 with one another.
    for name, noise in (("strong", 0.001), ("weaker", 0.003), ("weakest", 0.004)):
        returns[name] = signal + rng.normal(0, noise, 1000)
    returns["independent"] = rng.normal(0.0025, 0.01, 1000)
    rated = _rate(returns)
    result = select(rated.table, rated.returns, POLICY)
    assert "strong" in result.production and "independent" in result.production
    assert not {n for n in result.production if n.startswith("noise")}
    reasons = dict(zip(result.table["model_name"], result.table["reason"], strict=True))
    for name in ("weaker", "weakest"):
        if name not in result.production:  # min_k may bring them back, saying why
            assert reasons[name].startswith("correlated")
    assert "correlated" in reasons["weaker"] and "with strong" in reasons["weaker"]
    assert sum(result.table["weight"]) == pytest.approx(1.0)


def test_live_figures_come_from_the_live_part_of_the_record_only():
    rng = np.random.default_rng(7)
    good = rng.normal(0.003, 0.01, 600)
    losing = rng.normal(-0.006, 0.01, 60)
    rated = _rate({"m": good, "other": rng.normal(0, 0.01, 600)}, live={"m": losing},
                  stage="Production")
    row = rated.table.filter(pl.col("model_name") == "m").row(0, named=True)
    assert row["live_n_obs"] == 60 and row["n_obs"] == 660
    expected = np.mean(losing) / np.std(losing, ddof=1) * np.sqrt(DAILY)
    assert row["live_sharpe"] == pytest.approx(expected, rel=1e-9)
    assert row["live_psr"] < 0.05
    assert row["walk_forward_sharpe"] > 2
    other = rated.table.filter(pl.col("model_name") == "other").row(0, named=True)
    assert other["live_n_obs"] == 0
    result = select(rated.table, rated.returns, POLICY)
    assert "m" not in result.production
    assert "live record loses" in dict(zip(result.table["model_name"],
                                           result.table["reason"], strict=True))["m"]
