"""From model scores to positions to costed strategy returns.

Timing conventions (see ``factory.training.splits``): a signal formed at bar ``t``'s close trades
at bar ``t + 1`` at the execution price; ``label_t = p[t + 2] / p[t + 1] - 1``; a position held
from decision ``t`` earns ``position_t * label_t``; costs are charged on turnover,
``cost_bps / 1e4 * |position_t - position_{t-1}|``, starting flat (``position_{-1} = 0``).
"""

import numpy as np


def positions_from_scores(scores: np.ndarray, scale: float) -> np.ndarray:
    """Map model scores to positions in [-1, 1].

    ``position = clip(score / scale, -1, 1)``; a NaN score (no prediction) means no position.

    Parameters
    ----------
    scores : numpy.ndarray
        Model predictions, one per decision time.
    scale : float
        Positive, finite divisor; the caller derives it from training data only (for example
        the standard deviation of the training predictions), so no test information leaks.

    Returns
    -------
    numpy.ndarray
        Float positions, same shape as ``scores``.

    Raises
    ------
    ValueError
        If ``scale`` is not positive and finite.
    """
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    raw = np.asarray(scores, dtype=np.float64) / scale
    return np.clip(np.nan_to_num(raw, nan=0.0), -1.0, 1.0)


def strategy_returns(positions: np.ndarray, labels: np.ndarray, cost_bps: float) -> np.ndarray:
    """Per-bar strategy returns net of turnover costs.

    ``r_t = position_t * label_t - cost_bps / 1e4 * |position_t - position_{t-1}|`` with
    ``position_{-1} = 0``, so entering the first position is charged too.

    Parameters
    ----------
    positions : numpy.ndarray
        Finite 1-D positions decided at each bar.
    labels : numpy.ndarray
        Forward returns of the same length (``label_forward_returns``); NaN where unknown.
    cost_bps : float
        Cost per unit of turnover in basis points, at least 0.

    Returns
    -------
    numpy.ndarray
        Net returns; NaN where the label is NaN.

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite positions or a negative cost.
    """
    pos = np.asarray(positions, dtype=np.float64)
    lab = np.asarray(labels, dtype=np.float64)
    if pos.ndim != 1 or pos.shape != lab.shape:
        raise ValueError(f"positions {pos.shape} and labels {lab.shape} must be 1-D, same length")
    if not np.all(np.isfinite(pos)):
        raise ValueError(f"positions must be finite; rows {np.flatnonzero(~np.isfinite(pos))[:10]}")
    if cost_bps < 0:
        raise ValueError(f"cost_bps must be >= 0, got {cost_bps}")
    turnover = np.abs(np.diff(pos, prepend=0.0))
    return pos * lab - cost_bps / 1e4 * turnover
