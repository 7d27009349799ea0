"""Mean-variance portfolio construction with a factor risk model, built once, re-solved fast.

The problem, for weights ``w`` of ``n`` assets::

    maximise    mu'w - lambda (|G'w|^2 + sum(D w^2)) - sum(tc |w - w_prev|)
    subject to  sum|w| <= max_gross, |w_i| <= max_weight,
                and, as chosen: sum(w) == 0 (dollar neutral), w >= 0 (long only),
                sum(w) == net_exposure

``G = B chol(Cov_f)`` is the factor form of the risk model (``w' Sigma w = |G'w|^2 +
sum(D w^2)``), so the ``n x n`` covariance is never formed. The problem is built once, with
cvxpy Parameters for ``mu``, ``sqrt(lambda) G``, ``sqrt(lambda D)``, ``w_prev`` and ``tc``
(lambda is folded into the risk parameters and the turnover goes through an auxiliary
variable, which keeps the problem DPP): each rebalance only sets parameter values and cvxpy
skips re-canonicalisation. The values are multiplied by one positive factor
(``objective_scale``) that brings the objective's terms to order one: the optimum is the
same, and the solvers' tolerances resolve it.

Solvers: CLARABEL (shipped with cvxpy, the default) or ECOS (``pip install ecos``, the
project's ``ecos`` extra). HIGHS is refused: it never finished this problem here.

Status policy: only ``optimal`` is accepted by default (``optimal_inaccurate`` only with
``accept_inaccurate=True``). Every accepted answer is cleaned (``|w| < 1e-9`` set to 0, caps
clipped) and then checked against every constraint to ``WEIGHT_TOLERANCE`` (1e-6); anything else -
infeasible, a solver error, no value, NaN, a violated constraint - raises
``PortfolioSolveError``. ``rebalance`` turns that error into a result that keeps the previous
weights unchanged, so a caller never trades on half an answer. Measured here
(``bench/portfolio_solve.py``, 20 re-solves each of 50, 200 and 500 assets): both solvers
reached ``optimal`` every time. Before the objective was scaled, ECOS stopped at
``optimal_inaccurate`` on 5% to 25% of the re-solves of 200-500 assets. cvxpy's "Solution
may be inaccurate" warning is silenced: the status says it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from factory.portfolio.risk_model import FactorRiskModel

SUPPORTED_SOLVERS = ("CLARABEL", "ECOS")
WEIGHT_TOLERANCE = 1e-6
ZERO_WEIGHT = 1e-9


class PortfolioSolveError(RuntimeError):
    """The optimiser found no trustworthy answer; ``status`` and ``solver`` say why."""

    def __init__(self, message: str, *, status: str, solver: str) -> None:
        super().__init__(message)
        self.status = status
        self.solver = solver


@dataclass(frozen=True)
class PortfolioConstraints:
    """Limits on the weights (fractions of capital; negative weights are shorts).

    Attributes
    ----------
    max_gross : float
        Gross leverage limit, ``sum|w| <= max_gross``.
    max_weight : float
        Position cap, ``|w_i| <= max_weight``.
    dollar_neutral : bool
        ``sum(w) == 0``.
    long_only : bool
        ``w >= 0``.
    net_exposure : float or None
        ``sum(w) == net_exposure`` (1.0: fully invested); None leaves the net free.
    """

    max_gross: float = 2.0
    max_weight: float = 0.05
    dollar_neutral: bool = False
    long_only: bool = False
    net_exposure: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_gross", "max_weight"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.net_exposure is not None and not np.isfinite(self.net_exposure):
            raise ValueError(f"net_exposure must be finite, got {self.net_exposure}")
        if self.dollar_neutral and self.net_exposure is not None:
            raise ValueError("dollar_neutral already sets sum(w) == 0: leave net_exposure None "
                             f"(got {self.net_exposure})")

    @property
    def net_target(self) -> float | None:
        """The required ``sum(w)``: 0 when dollar neutral, ``net_exposure``, or None."""
        return 0.0 if self.dollar_neutral else self.net_exposure

    def describe(self) -> str:
        """The constraints in force, in words."""
        parts = [f"gross <= {self.max_gross:g}", f"|w_i| <= {self.max_weight:g}"]
        if self.long_only:
            parts.append("long only")
        if self.net_target is not None:
            parts.append(f"net exposure == {self.net_target:g}")
        return ", ".join(parts)

    def conflicts(self, n_assets: int) -> list[str]:
        """Reasons, worked out by hand, why no weights of ``n_assets`` assets can comply."""
        target = self.net_target
        if target is None:
            return []
        reasons = []
        if self.long_only and target < 0:
            reasons.append(f"net exposure {target:g} is impossible long-only")
        if abs(target) > n_assets * self.max_weight + WEIGHT_TOLERANCE:
            reasons.append(f"net exposure {target:g} is impossible with {n_assets} assets capped"
                           f" at {self.max_weight:.4g} (at most {n_assets * self.max_weight:.4g})")
        if abs(target) > self.max_gross + WEIGHT_TOLERANCE:
            reasons.append(f"net exposure {target:g} exceeds the gross leverage limit "
                           f"{self.max_gross:g}")
        return reasons

    def violations(self, weights: np.ndarray, tolerance: float = WEIGHT_TOLERANCE) -> list[str]:
        """Every constraint ``weights`` break by more than ``tolerance``, in words."""
        found = []
        gross = float(np.abs(weights).sum())
        if gross > self.max_gross + tolerance:
            found.append(f"gross {gross:.9g} > {self.max_gross:g}")
        largest = float(np.abs(weights).max(initial=0.0))
        if largest > self.max_weight + tolerance:
            found.append(f"largest position {largest:.9g} > {self.max_weight:g}")
        if self.long_only and weights.min(initial=0.0) < -tolerance:
            found.append(f"short position {weights.min():.9g} while long only")
        target = self.net_target
        if target is not None and abs(weights.sum() - target) > tolerance:
            found.append(f"net exposure {weights.sum():.9g} != {target:g}")
        return found


@dataclass(frozen=True, eq=False)
class RebalanceResult:
    """One rebalance: the target weights and how they were obtained.

    Attributes
    ----------
    symbols : tuple of str
        The assets, in the order of ``weights``.
    weights : numpy.ndarray
        The target weights (read-only); the previous weights when ``kept_previous``.
    status : str
        The solver's status (``optimal``, ``infeasible``, ``solver_error``, ...).
    solver : str
        ``CLARABEL`` or ``ECOS``.
    solve_seconds : float
        Wall time of the solve call (cvxpy's parameter update included); NaN when
        ``kept_previous``.
    kept_previous : bool
        True when no trustworthy answer was found and ``weights`` are the previous ones.
    message : str
        Empty on success; otherwise why the previous weights were kept.
    objective : float
        The objective at ``weights``.
    """

    symbols: tuple[str, ...]
    weights: np.ndarray
    status: str
    solver: str
    solve_seconds: float
    kept_previous: bool
    message: str
    objective: float


def portfolio_objective(
    weights: np.ndarray,
    expected_returns: np.ndarray,
    risk_model: FactorRiskModel,
    previous_weights: np.ndarray,
    risk_aversion: float,
    transaction_cost: float | np.ndarray,
) -> float:
    """``mu'w - lambda w'Sigma w - sum(tc |w - w_prev|)`` evaluated in numpy (O(n k))."""
    exposure = risk_model.factor_form().T @ weights
    risk = exposure @ exposure + risk_model.specific_variance @ weights**2
    turnover_cost = np.sum(transaction_cost * np.abs(weights - previous_weights))
    return float(expected_returns @ weights - risk_aversion * risk - turnover_cost)


class MeanVarianceOptimizer:
    """A parameterised mean-variance problem for a fixed universe, re-solved each rebalance.

    Parameters
    ----------
    symbols : sequence of str
        The universe, in order; every vector passed later follows it.
    n_factors : int
        Number of factors of the risk models it will be given.
    constraints : PortfolioConstraints
        The weight limits (fixed for the life of the problem).
    risk_aversion : float
        Default ``lambda`` (per unit of variance over the risk model's horizon).
    transaction_cost : float or array of float
        Default cost per unit of turnover, one number or one per asset.
    solver : str
        ``CLARABEL`` (default) or ``ECOS``.
    solver_options : mapping, optional
        Passed to the solver (e.g. ``{"max_iter": 200}``).
    accept_inaccurate : bool
        Also accept the ``optimal_inaccurate`` status (its weights are still checked
        against every constraint).

    Raises
    ------
    ValueError
        An unknown or refused solver, repeated symbols, bad defaults.
    ImportError
        ECOS asked for but not installed; the message names the ``ecos`` extra.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        n_factors: int,
        constraints: PortfolioConstraints | None = None,
        *,
        risk_aversion: float = 1.0,
        transaction_cost: float | np.ndarray = 0.0,
        solver: str = "CLARABEL",
        solver_options: Mapping[str, object] | None = None,
        accept_inaccurate: bool = False,
    ) -> None:
        self.symbols = tuple(symbols)
        if len(set(self.symbols)) != len(self.symbols) or not self.symbols:
            raise ValueError(f"symbols must be non-empty and distinct, got {list(symbols)}")
        if n_factors < 1:
            raise ValueError(f"n_factors must be >= 1, got {n_factors}")
        self.solver = _checked_solver(solver)
        self.constraints = constraints or PortfolioConstraints()
        self.n_factors = n_factors
        self.risk_aversion = _checked_risk_aversion(risk_aversion)
        self.transaction_cost = self._checked_cost(transaction_cost)
        self.solver_options = dict(solver_options or {})
        self.accepted = {cp.OPTIMAL} | ({cp.OPTIMAL_INACCURATE} if accept_inaccurate else set())
        self._build()

    def _build(self) -> None:
        n, limits = len(self.symbols), self.constraints
        self.mu = cp.Parameter(n, name="mu")
        self.scaled_factor_form = cp.Parameter((n, self.n_factors), name="sqrt_lambda_G")
        self.scaled_specific_vol = cp.Parameter(n, nonneg=True, name="sqrt_lambda_D")
        self.previous = cp.Parameter(n, name="w_prev")
        self.cost = cp.Parameter(n, nonneg=True, name="tc")
        self.weights = cp.Variable(n, name="w")
        trade = cp.Variable(n, name="abs_trade")
        risk = (cp.sum_squares(self.scaled_factor_form.T @ self.weights)
                + cp.sum_squares(cp.multiply(self.scaled_specific_vol, self.weights)))
        objective = cp.Maximize(self.mu @ self.weights - risk - self.cost @ trade)
        rules = [cp.norm1(self.weights) <= limits.max_gross,
                 cp.abs(self.weights) <= limits.max_weight,
                 trade >= self.weights - self.previous,
                 trade >= self.previous - self.weights]
        if limits.long_only:
            rules.append(self.weights >= 0)
        if limits.net_target is not None:
            rules.append(cp.sum(self.weights) == limits.net_target)
        self.problem = cp.Problem(objective, rules)

    def solve(
        self,
        expected_returns: np.ndarray,
        risk_model: FactorRiskModel,
        previous_weights: np.ndarray,
        *,
        risk_aversion: float | None = None,
        transaction_cost: float | np.ndarray | None = None,
    ) -> RebalanceResult:
        """Optimal weights for these inputs, or ``PortfolioSolveError``.

        Parameters
        ----------
        expected_returns : array of float
            ``mu``, one per symbol, over the risk model's horizon.
        risk_model : FactorRiskModel
            Same symbols in the same order, ``n_factors`` factors.
        previous_weights : array of float
            ``w_prev``, the weights held now (turnover is measured from them).
        risk_aversion, transaction_cost : optional
            Override the defaults for this solve.

        Returns
        -------
        RebalanceResult
            ``kept_previous=False``.

        Raises
        ------
        ValueError
            Bad inputs, naming the symbols concerned.
        PortfolioSolveError
            No trustworthy answer (see the module's status policy).
        """
        mu = self._checked_vector(expected_returns, "expected_returns")
        w_prev = self._checked_vector(previous_weights, "previous_weights")
        self._check_risk_model(risk_model)
        lam = self.risk_aversion if risk_aversion is None else _checked_risk_aversion(
            risk_aversion)
        cost = self.transaction_cost if transaction_cost is None else self._checked_cost(
            transaction_cost)
        form = risk_model.factor_form()
        scale = objective_scale(mu, cost, lam * (np.sum(form**2, axis=1)
                                                 + risk_model.specific_variance),
                                self.constraints.max_weight)
        self.mu.value = scale * mu
        self.scaled_factor_form.value = np.sqrt(scale * lam) * form
        self.scaled_specific_vol.value = np.sqrt(scale * lam * risk_model.specific_variance)
        self.previous.value = w_prev
        self.cost.value = scale * cost
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Solution may be inaccurate")
                self.problem.solve(solver=self.solver, **self.solver_options)
        except cp.error.SolverError as error:
            raise self._failure("solver_error", f"the solver failed: {error}") from error
        seconds = time.perf_counter() - started
        status, raw = self.problem.status, self.weights.value
        if status not in self.accepted:
            raise self._failure(status, f"status {status}")
        if raw is None or not np.isfinite(raw).all():
            raise self._failure(status, f"status {status} but the weights are missing or NaN")
        weights = self._cleaned(raw)
        broken = self.constraints.violations(weights)
        if broken:
            raise self._failure(status, "the solution breaks " + "; ".join(broken))
        weights.flags.writeable = False
        return RebalanceResult(
            symbols=self.symbols, weights=weights, status=status, solver=self.solver,
            solve_seconds=seconds, kept_previous=False, message="",
            objective=portfolio_objective(weights, mu, risk_model, w_prev, lam, cost))

    def rebalance(
        self,
        expected_returns: np.ndarray,
        risk_model: FactorRiskModel,
        previous_weights: np.ndarray,
        *,
        risk_aversion: float | None = None,
        transaction_cost: float | np.ndarray | None = None,
    ) -> RebalanceResult:
        """``solve``, but a failed solve keeps ``previous_weights`` instead of raising.

        Bad inputs still raise ValueError: they are the caller's error, and keeping the old
        weights would hide it. A ``PortfolioSolveError`` becomes a result with the previous
        weights unchanged, ``kept_previous=True`` and the error's text as ``message``.
        """
        try:
            return self.solve(expected_returns, risk_model, previous_weights,
                              risk_aversion=risk_aversion, transaction_cost=transaction_cost)
        except PortfolioSolveError as error:
            kept = np.array(previous_weights, dtype=float)
            kept.flags.writeable = False
            lam = self.risk_aversion if risk_aversion is None else risk_aversion
            cost = self.transaction_cost if transaction_cost is None else transaction_cost
            return RebalanceResult(
                symbols=self.symbols, weights=kept, status=error.status, solver=self.solver,
                solve_seconds=float("nan"), kept_previous=True, message=str(error),
                objective=portfolio_objective(kept, np.asarray(expected_returns, dtype=float),
                                              risk_model, kept, lam, cost))

    def _failure(self, status: str, what: str) -> PortfolioSolveError:
        """The error for a failed solve, naming the solver, status and likely conflicts."""
        conflicts = self.constraints.conflicts(len(self.symbols))
        why = ("; ".join(conflicts) if conflicts
               else f"constraints in force: {self.constraints.describe()}")
        return PortfolioSolveError(f"{self.solver} found no usable portfolio for "
                                   f"{len(self.symbols)} assets ({what}): {why}",
                                   status=status, solver=self.solver)

    def _cleaned(self, raw: np.ndarray) -> np.ndarray:
        """Solver noise removed: tiny weights to 0, positions clipped to their caps."""
        weights = np.where(np.abs(raw) < ZERO_WEIGHT, 0.0, raw)
        low = 0.0 if self.constraints.long_only else -self.constraints.max_weight
        return np.clip(weights, low, self.constraints.max_weight)

    def _checked_vector(self, values: np.ndarray, name: str) -> np.ndarray:
        array = np.asarray(values, dtype=float)
        if array.shape != (len(self.symbols),):
            raise ValueError(f"{name} has shape {array.shape}, expected ({len(self.symbols)},)"
                             " - one value per symbol")
        bad = [s for s, v in zip(self.symbols, array, strict=True) if not np.isfinite(v)]
        if bad:
            raise ValueError(f"{name} is NaN or infinite for {bad}")
        return array

    def _checked_cost(self, cost: float | np.ndarray) -> np.ndarray:
        array = np.broadcast_to(np.asarray(cost, dtype=float), (len(self.symbols),)).copy()
        bad = [s for s, c in zip(self.symbols, array, strict=True)
               if not (np.isfinite(c) and c >= 0)]
        if bad:
            raise ValueError(f"transaction_cost must be finite and >= 0; not for {bad}")
        return array

    def _check_risk_model(self, risk_model: FactorRiskModel) -> None:
        if risk_model.symbols != self.symbols:
            missing = sorted(set(self.symbols) - set(risk_model.symbols))
            extra = sorted(set(risk_model.symbols) - set(self.symbols))
            raise ValueError("the risk model's symbols differ from the optimiser's: "
                             f"missing {missing}, extra {extra}"
                             + ("" if missing or extra else ", same symbols in another order"))
        if len(risk_model.factor_names) != self.n_factors:
            raise ValueError(f"the risk model has {len(risk_model.factor_names)} factors, the "
                             f"optimiser was built for {self.n_factors}")


def objective_scale(mu: np.ndarray, cost: np.ndarray, variance: np.ndarray,
                    max_weight: float) -> float:
    """The positive factor the objective is multiplied by before the solve: one over the
    largest of ``|mu|``, ``tc`` and ``lambda`` times an asset's variance, times the largest
    weight an asset may take (1 when all are 0): one asset's terms become order one.

    Daily returns make every term of the objective about 1e-4 and its value about 1e-6, below
    what the solvers' default tolerances resolve: on the demo's two indices CLARABEL moved a
    weight from 0.0074 to 0.0081 between two solves whose optimum is the same. Scaling leaves
    the optimum unchanged and brings the terms to order one.
    """
    largest = max(float(np.max(np.abs(mu), initial=0.0)), float(np.max(cost, initial=0.0)),
                  float(np.max(variance, initial=0.0)))
    return 1.0 / (largest * max_weight) if largest > 0.0 else 1.0


def _checked_solver(solver: str) -> str:
    name = solver.upper()
    if name == "HIGHS":
        raise ValueError("HIGHS is refused: it never finished this quadratic problem; use "
                         f"one of {list(SUPPORTED_SOLVERS)}")
    if name not in SUPPORTED_SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; use one of {list(SUPPORTED_SOLVERS)}")
    if name not in cp.installed_solvers():
        raise ImportError(f"solver {name} is not installed: pip install {name.lower()} "
                          f"(or the project's extra: pip install 'model-factory[{name.lower()}]')")
    return name


def _checked_risk_aversion(value: float) -> float:
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"risk_aversion must be finite and >= 0, got {value}")
    return float(value)
