"""Exact Newton-type solvers for the linear models' objectives, where scikit-learn's are slow.

Flattened windows are wide (``lookback * n_features`` columns, 630 at 30 bars of the
technical set) and their columns are strongly collinear (lag ``k`` of a feature is close to
lag ``k + 1``). First-order and coordinate solvers crawl on such problems: scikit-learn's
saga stopped at its 1,000-epoch cap (25 s a fold) without converging on the L1
one, and liblinear's trust-region Newton for the squared-loss SVR ran its conjugate
gradients through a sparse row format (3-17 s a fold at 30 bars, 74 s at 90). All have far
fewer columns than rows, so a Newton method that forms the ``d x d`` curvature with BLAS
and solves with it directly reaches the optimum in a handful of iterations:

- :func:`squared_svr` minimises liblinear's L2-loss SVR objective exactly (generalised
  Newton, the Gram matrix formed once);
- :func:`penalised_logistic` minimises the logistic objective with an L1 part, lasso or
  elastic net (proximal Newton, its subproblem solved by accelerated proximal gradient on
  the ``d x d`` model). The pure ridge is scikit-learn's own ``newton-cholesky``.

The curvature is summed in float32 (half the time of float64): it only sets the direction
of each step, while the gradient, the objective and so the optimum are float64. Once a step
fails its line search or cuts the optimality gap by less than half (float32 curvature has
run out of precision: ill-conditioned columns), the curvature is summed in float64.

Both return plain coefficients; the models store them in the scikit-learn estimator whose
objective they minimise, so saved files and predictions keep their form.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.sparse.linalg import eigsh
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning

ARMIJO = 1e-4
"""Sufficient-decrease fraction of the backtracking line searches."""
MAX_HALVINGS = 60
"""Backtracking halvings before a line search gives up (a step below 2**-60)."""
SMALL = 64
"""Hessians up to this size get their largest eigenvalue from a dense decomposition."""


@dataclass(frozen=True)
class LinearSolution:
    """What a solver found: ``y ~ rows @ coef + intercept``.

    Attributes
    ----------
    coef : np.ndarray
        ``(n_columns,)`` float64 weights.
    intercept : float
        The constant term.
    n_iter : int
        Newton iterations taken.
    converged : bool
        Whether the stopping rule was met before ``max_iter``.
    """

    coef: np.ndarray
    intercept: float
    n_iter: int
    converged: bool


def _with_constant(rows: np.ndarray) -> np.ndarray:
    """``[rows, 1]`` as float64: the constant column carries the intercept."""
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.float64)
    out[:, :-1] = rows
    out[:, -1] = 1.0
    return out


def _gram(block_rows: np.ndarray, X: np.ndarray,
          weights: np.ndarray | None = None) -> np.ndarray:
    """``X' diag(weights) X`` for ``X = [rows, 1]`` (float64), its ``rows' rows`` block
    summed in ``block_rows``' precision: float32 rows take half the time of float64."""
    scaled = block_rows if weights is None else (
        block_rows * np.sqrt(weights).astype(block_rows.dtype)[:, None])
    edge = X.sum(axis=0) if weights is None else X.T @ weights
    gram = np.empty((X.shape[1], X.shape[1]))
    gram[:-1, :-1] = scaled.T @ scaled
    gram[-1, :] = edge
    gram[:, -1] = edge
    return gram


def _backtrack(objective: Callable[[np.ndarray, np.ndarray], float],
               start: tuple[np.ndarray, np.ndarray], moves: tuple[np.ndarray, np.ndarray],
               value: float, slope: float) -> tuple[float, float] | None:
    """``(size, objective(start + size * moves))`` for the first size of ``1, 1/2, 1/4, ...``
    that decreases the objective by at least ``ARMIJO * size * |slope|`` (``start`` and
    ``moves`` pair a per-row quantity with the weights); None when ``slope`` is not
    negative or no size does."""
    if not slope < 0.0:
        return None
    size = 1.0
    for _ in range(MAX_HALVINGS):
        trial = objective(start[0] + size * moves[0], start[1] + size * moves[1])
        if trial <= value + ARMIJO * size * slope:
            return size, trial
        size *= 0.5
    return None


def _finish(name: str, converged: bool, steps: int, max_iter: int) -> None:
    """Warn (ConvergenceWarning) when a solver stopped short of its tolerance."""
    if converged:
        return
    why = (f"{max_iter} iterations did not converge" if steps == max_iter else
           f"stalled after {steps} iterations: the objective does not decrease further at "
           "float64 precision")
    warnings.warn(f"{name}: {why}", ConvergenceWarning, stacklevel=3)


def _stalling(gaps: list[float]) -> bool:
    """Whether the last step cut the optimality gap by less than half: Newton steps from a
    float32 curvature have reached its precision, so the curvature is summed in float64."""
    return len(gaps) >= 2 and gaps[-1] > 0.5 * gaps[-2]


def squared_svr(rows: np.ndarray, y: np.ndarray, C: float, epsilon: float, *,
                max_iter: int = 1000, tol: float = 1e-8) -> LinearSolution:
    """Minimise liblinear's L2-loss epsilon-insensitive SVR objective exactly.

    The objective is scikit-learn's ``LinearSVR(loss="squared_epsilon_insensitive")`` with
    its defaults ``fit_intercept=True, intercept_scaling=1``: liblinear appends a constant
    column and regularises its weight, the intercept, like the others::

        0.5 * (|w|^2 + b^2) + C * sum_i max(0, |y_i - x_i w - b| - epsilon)^2

    It is strongly convex and piecewise quadratic, so a generalised Newton method (Hessian
    ``I + 2C X_A' X_A`` over the rows ``A`` outside the tube) with a backtracking line
    search converges to it, exactly once the set ``A`` settles: typically 4-8 iterations.
    The Gram matrix ``X'X`` is formed once; each iteration subtracts the rows inside the
    tube (few, for a narrow tube) or sums those outside, whichever are fewer.

    Parameters
    ----------
    rows : np.ndarray
        ``(n, d)`` inputs.
    y : np.ndarray
        ``(n,)`` targets.
    C, epsilon : float
        liblinear's ``C`` and tube half-width.
    max_iter : int
        Cap on Newton iterations (liblinear's primal solver counts the same ones).
    tol : float
        Stop when the gradient's norm falls below ``tol`` times its norm at zero.

    Returns
    -------
    LinearSolution
        A :class:`~sklearn.exceptions.ConvergenceWarning` is issued when it stops short of
        ``tol``.
    """
    rows32 = np.asarray(rows, dtype=np.float32)
    X = _with_constant(rows)
    y = np.asarray(y, dtype=np.float64)
    grams = {False: _gram(rows32, X)}  # float64 (True) only if float32 stops paying off

    def objective(residual: np.ndarray, weights: np.ndarray) -> float:
        excess = np.maximum(np.abs(residual) - epsilon, 0.0)
        return 0.5 * float(weights @ weights) + C * float(excess @ excess)

    def hessian(outside: np.ndarray, precise: bool) -> np.ndarray:
        block = X[:, :-1] if precise else rows32
        if precise not in grams:
            grams[precise] = _gram(block, X)
        if outside.sum() * 2 >= len(outside):
            curvature = grams[precise] - _gram(block[~outside], X[~outside])
        else:
            curvature = _gram(block[outside], X[outside])
        out = 2.0 * C * curvature
        out[np.diag_indices_from(out)] += 1.0
        return out

    w = np.zeros(X.shape[1])
    residual = y.copy()
    value = objective(residual, w)
    norms: list[float] = []
    precise = False
    while True:
        outside = np.abs(residual) > epsilon
        pull = np.where(outside, residual - epsilon * np.sign(residual), 0.0)
        gradient = w - 2.0 * C * (X.T @ pull)
        norms.append(float(np.linalg.norm(gradient)))
        converged = norms[-1] <= tol * norms[0]
        steps = len(norms) - 1
        if converged or steps == max_iter:
            break
        precise = precise or _stalling(norms)
        for attempt in sorted({precise, True}):  # a failed float32 step is taken again
            step = -cho_solve(cho_factor(hessian(outside, attempt), check_finite=False),
                              gradient, check_finite=False)
            moved = X @ step
            found = _backtrack(objective, (residual, w), (-moved, step), value,
                               float(gradient @ step))
            if found is not None:
                break
        if found is None:
            break
        precise = attempt
        size, value = found
        w = w + size * step
        residual = residual - size * moved
    _finish("squared_svr", converged, steps, max_iter)
    return LinearSolution(w[:-1], float(w[-1]), steps, converged)


def _min_norm_subgradient(gradient: np.ndarray, weights: np.ndarray,
                          penalty: np.ndarray) -> np.ndarray:
    """The smallest element of the subdifferential of ``f + sum(penalty * |w|)``: zero at
    the optimum, so its largest entry measures how far from it ``weights`` are."""
    shrunk = np.sign(gradient) * np.maximum(np.abs(gradient) - penalty, 0.0)
    return np.where(weights != 0.0, gradient + penalty * np.sign(weights), shrunk)


def _lasso_model_step(hessian: np.ndarray, gradient: np.ndarray, weights: np.ndarray,
                      penalty: np.ndarray, target: float, max_steps: int) -> np.ndarray:
    """Minimise ``g'd + d'Hd/2 + sum(penalty * |w + d|)`` over ``d`` (the proximal Newton
    subproblem) by FISTA with gradient restarts, until the subproblem's own min-norm
    subgradient is at most ``target``; returns ``d``."""
    if len(hessian) <= SMALL:
        largest = float(np.linalg.eigvalsh(hessian)[-1])
    else:  # Lanczos from a fixed start (deterministic), accurate to 0.1%: 2% margin
        largest = float(eigsh(hessian, k=1, which="LA", tol=1e-3, v0=np.ones(len(hessian)),
                              return_eigenvectors=False)[0])
    lipschitz = 1.02 * largest
    threshold = penalty / lipschitz
    current = weights.copy()
    h_current = np.zeros_like(weights)  # H @ (current - weights)
    h_momentum = h_current.copy()
    momentum = current.copy()
    t = 1.0
    for count in range(1, max_steps + 1):
        moved = momentum - (gradient + h_momentum) / lipschitz
        following = np.sign(moved) * np.maximum(np.abs(moved) - threshold, 0.0)
        h_following = hessian @ (following - weights)
        if (momentum - following) @ (following - current) > 0.0:
            t = 1.0  # the momentum points uphill: restart it
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_next
        momentum = following + beta * (following - current)
        h_momentum = h_following + beta * (h_following - h_current)
        current, h_current, t = following, h_following, t_next
        if count % 10 == 0 and np.abs(_min_norm_subgradient(
                gradient + h_current, current, penalty)).max() <= target:
            break
    return current - weights


def penalised_logistic(rows: np.ndarray, up: np.ndarray, l1: float, l2: float, *,
                       max_iter: int = 1000, tol: float = 1e-6,
                       max_model_steps: int = 20_000) -> LinearSolution:
    """Minimise ``sum(log loss) + l1 * |w|_1 + l2 / 2 * |w|^2`` (intercept unpenalised).

    The objective of scikit-learn's ``LogisticRegression(C=1 / (l1 + l2),
    l1_ratio=l1 / (l1 + l2))``, which only saga solves when ``l1 > 0``. It is proximal
    Newton (Lee, Sun and Saunders 2014): each iteration minimises the quadratic
    model of the smooth part plus the exact L1 term, by FISTA on the ``d x d`` Hessian, to
    a tenth of the current optimality gap, then backtracks along that direction until the
    objective falls enough; it converges linearly, about tenfold an iteration.

    Parameters
    ----------
    rows : np.ndarray
        ``(n, d)`` inputs.
    up : np.ndarray
        ``(n,)`` booleans: the positive class.
    l1, l2 : float
        Penalty weights, ``l1 > 0`` and ``l2 >= 0``.
    max_iter : int
        Cap on proximal Newton iterations.
    tol : float
        Stop when the largest entry of the min-norm subgradient, divided by ``n``, is at
        most ``tol`` (scikit-learn's Newton solvers test the gradient of the mean loss).
    max_model_steps : int
        Cap on FISTA steps per subproblem.

    Returns
    -------
    LinearSolution
        A :class:`~sklearn.exceptions.ConvergenceWarning` is issued when it stops short of
        ``tol``.
    """
    if not l1 > 0.0 or l2 < 0.0:
        raise ValueError("penalised_logistic: needs l1 > 0 and l2 >= 0 (scikit-learn's "
                         "newton-cholesky solves the pure ridge)")
    rows32 = np.asarray(rows, dtype=np.float32)
    X = _with_constant(rows)
    target = np.asarray(up, dtype=np.float64)
    sign = 2.0 * target - 1.0
    n, width = X.shape
    penalty = np.full(width, float(l1))
    penalty[-1] = 0.0
    ridge = np.full(width, float(l2))
    ridge[-1] = 0.0

    def objective(margin: np.ndarray, weights: np.ndarray) -> float:
        return (float(np.logaddexp(0.0, -sign * margin).sum())
                + float(penalty @ np.abs(weights)) + 0.5 * float(ridge @ weights ** 2))

    w = np.zeros(width)
    margin = np.zeros(n)
    value = objective(margin, w)
    gaps: list[float] = []
    precise = False
    while True:
        p = expit(margin)
        gradient = X.T @ (p - target) + ridge * w
        gaps.append(float(np.abs(_min_norm_subgradient(gradient, w, penalty)).max()))
        converged = gaps[-1] <= tol * n
        steps = len(gaps) - 1
        if converged or steps == max_iter:
            break
        precise = precise or _stalling(gaps)
        # The working set: the intercept, weights already non-zero and zeros whose gradient
        # exceeds their penalty; the other zeros would stay zero (the gap checks them all).
        free = (w != 0.0) | (np.abs(gradient) > penalty) | (penalty == 0.0)
        every = bool(free.all())
        X_free = X if every else X[:, free]
        for attempt in sorted({precise, True}):  # a failed float32 step is taken again
            block = X[:, :-1] if attempt else rows32
            hessian = _gram(block if every else block[:, free[:-1]], X_free, p * (1.0 - p))
            hessian[np.diag_indices_from(hessian)] += ridge[free]
            step = _lasso_model_step(hessian, gradient[free], w[free], penalty[free],
                                     0.1 * gaps[-1], max_model_steps)
            moved = X_free @ step
            full_step = np.zeros(width)
            full_step[free] = step
            found = _backtrack(objective, (margin, w), (moved, full_step), value,
                               float(gradient[free] @ step + penalty[free] @ (
                                   np.abs(w[free] + step) - np.abs(w[free]))))
            if found is not None:
                break
        if found is None:
            break
        precise = attempt
        size, value = found
        w = w + size * full_step
        margin = margin + size * moved
    _finish("penalised_logistic", converged, steps, max_iter)
    return LinearSolution(w[:-1], float(w[-1]), steps, converged)
