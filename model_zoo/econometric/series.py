"""Rebuilding each asset's contiguous series from its windows: what every econometric model
of the zoo filters (ARIMA, GARCH, Holt-Winters)."""

from __future__ import annotations

import numpy as np

from model_zoo.base import TARGET_FEATURE


def contiguous_segments(X: np.ndarray, groups: np.ndarray, column: int, lookback: int,
                        owner: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split rows into runs of overlapping windows; return ``(rows, series)`` pairs.

    For consecutive windows of one asset the series is
    ``concat(X[first, :, column], X[rest, -1, column])``, so row ``k`` of a run decides at
    index ``lookback - 1 + k`` of its series. Consecutive rows whose windows do not overlap
    (a gap in the data, or a new asset) start a new run.

    Raises
    ------
    ValueError
        ``X`` is not ``(n, lookback, n_features)`` (``owner`` names the model).
    """
    if X.ndim != 3 or X.shape[1] != lookback or not 0 <= column < X.shape[2]:
        raise ValueError(f"{owner} expects X of shape (n, {lookback}, n_features) with "
                         f"{TARGET_FEATURE!r} at column {column}; got {X.shape}")
    values = np.asarray(X[:, :, column], dtype=np.float64)
    groups = np.asarray(groups)
    if len(groups) != len(values):
        raise ValueError(f"{owner}: groups has {len(groups)} rows but X has {len(values)}")
    segments = []
    for group in dict.fromkeys(groups.tolist()):
        rows = np.flatnonzero(groups == group)
        overlaps = np.all(np.isclose(values[rows[1:], :-1], values[rows[:-1], 1:]), axis=1)
        for run in np.split(rows, np.flatnonzero(~overlaps) + 1):
            segments.append((run, np.concatenate([values[run[0]], values[run[1:], -1]])))
    return segments
