"""Wall time of the mean-variance optimiser: the first solve against parameterised re-solves.

For 50, 200 and 500 assets with a 5-factor risk model (random but daily-scaled: market factor
about 1% a day, specific volatility 1.5-3% a day, expected returns of a few basis points, 5 bp
transaction cost, default limits: gross 2, 5% per position), the first solve (building the
cvxpy problem, canonicalising it and solving) is the baseline; then ``--rebalances``
re-solves with a new ``mu`` and the previous answer as ``w_prev``, which only update parameter
values. Printed per solver (CLARABEL, and ECOS where installed): the first solve, the median
re-solve, the median time inside the solver itself (the rest is cvxpy's parameter update),
their ratio to the first solve, and how many re-solves kept the previous weights.

Target: a 500-asset re-solve under 50 ms.

Usage: ``python bench/portfolio_solve.py [--rebalances 20]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import cvxpy as cp
import numpy as np

from factory.portfolio import FactorRiskModel, MeanVarianceOptimizer

ASSET_COUNTS = (50, 200, 500)
N_FACTORS = 5
TARGET_SECONDS = 0.050
RISK_AVERSION = 10.0
TRANSACTION_COST = 5e-4


def _risk_model(rng: np.random.Generator, n: int) -> FactorRiskModel:
    """A daily factor model: betas around 1 to a 1%-a-day market, four smaller style factors."""
    loadings = rng.normal(0.0, 0.5, (n, N_FACTORS))
    loadings[:, 0] += 1.0
    factor_vol = np.array([0.010, 0.005, 0.004, 0.004, 0.003])
    return FactorRiskModel(
        symbols=tuple(f"A{i:03d}" for i in range(n)),
        factor_names=tuple(f"F{j}" for j in range(N_FACTORS)),
        loadings=loadings, factor_covariance=np.diag(factor_vol**2),
        specific_variance=rng.uniform(0.015, 0.03, n) ** 2,
        as_of=dt.date(2020, 1, 1), horizon_days=1, method="synthetic")


def _expected_returns(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0.0, 5e-4, n)


def _measure(n: int, solver: str, rebalances: int) -> dict[str, float]:
    """First solve and re-solve times for ``n`` assets on ``solver``."""
    rng = np.random.default_rng(n)
    model = _risk_model(rng, n)
    started = time.perf_counter()
    optimizer = MeanVarianceOptimizer(model.symbols, N_FACTORS, risk_aversion=RISK_AVERSION,
                                      transaction_cost=TRANSACTION_COST, solver=solver)
    held = optimizer.solve(_expected_returns(rng, n), model, np.zeros(n)).weights
    first = time.perf_counter() - started
    walls, inside, kept = [], [], 0
    for _ in range(rebalances):
        result = optimizer.rebalance(_expected_returns(rng, n), model, held)
        kept += result.kept_previous
        walls.append(result.solve_seconds)
        inside.append(optimizer.problem.solver_stats.solve_time or np.nan)
        held = result.weights
    return {"first": first, "resolve": float(np.nanmedian(walls)),
            "inside": float(np.nanmedian(inside)), "kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rebalances", type=int, default=20)
    args = parser.parse_args()
    solvers = [s for s in ("CLARABEL", "ECOS") if s in cp.installed_solvers()]
    print(f"{N_FACTORS} factors, {args.rebalances} re-solves per case, cvxpy {cp.__version__}")
    print(f"{'solver':9} {'assets':>6} {'first solve':>12} {'re-solve':>10} {'in solver':>10} "
          f"{'re-solve/first':>15} {'kept prev':>9}")
    target = {}
    for solver in solvers:
        for n in ASSET_COUNTS:
            figures = _measure(n, solver, args.rebalances)
            print(f"{solver:9} {n:6d} {figures['first'] * 1e3:9.1f} ms "
                  f"{figures['resolve'] * 1e3:7.1f} ms {figures['inside'] * 1e3:7.1f} ms "
                  f"{figures['resolve'] / figures['first']:15.3f} {figures['kept']:9d}")
            if n == max(ASSET_COUNTS):
                target[solver] = figures["resolve"]
    for solver, seconds in target.items():
        verdict = "met" if seconds < TARGET_SECONDS else "NOT met"
        print(f"target: {max(ASSET_COUNTS)}-asset re-solve under {TARGET_SECONDS * 1e3:.0f} ms "
              f"on {solver}: {seconds * 1e3:.1f} ms, {verdict}")


if __name__ == "__main__":
    main()
