"""Sliding windows over one asset's feature matrix, and the scaler fitted on training rows.

A window ending at bar t holds bars t-lookback+1 .. t; it exists only when every value in it
is finite (indicator warm-ups are dropped, never filled from the future).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def sliding_windows(matrix: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """All complete windows of ``matrix``.

    Parameters
    ----------
    matrix : np.ndarray
        ``(T, F)`` features of one asset in time order.
    lookback : int
        Window length.

    Returns
    -------
    X : np.ndarray
        ``(n, lookback, F)`` float32 windows with only finite values.
    end_rows : np.ndarray
        ``(n,)`` row of ``matrix`` at which each window ends (its decision bar).
    """
    n_rows, n_features = matrix.shape
    if n_rows < lookback:
        return np.empty((0, lookback, n_features), np.float32), np.empty(0, np.int64)
    bad = (~np.isfinite(matrix)).any(axis=1).astype(np.int64)
    bad_before = np.concatenate(([0], np.cumsum(bad)))
    ends = np.arange(lookback - 1, n_rows)
    complete = bad_before[ends + 1] - bad_before[ends + 1 - lookback] == 0
    ends = ends[complete]
    view = sliding_window_view(matrix, lookback, axis=0)  # (T-L+1, F, L)
    windows = view[ends - (lookback - 1)].transpose(0, 2, 1).astype(np.float32)
    return windows, ends


@dataclass(frozen=True)
class FeatureScaler:
    """Per-feature standardisation fitted on the training fold only (saved with the model)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, rows: np.ndarray) -> FeatureScaler:
        """Fit on ``(m, F)`` training bars; a constant feature keeps scale 1."""
        mean = rows.mean(axis=0)
        std = rows.std(axis=0)
        return cls(mean=mean, std=np.where(std > 0, std, 1.0))

    def transform(self, windows: np.ndarray) -> np.ndarray:
        """Scale ``(n, L, F)`` windows (or ``(m, F)`` rows); returns float32."""
        return ((windows - self.mean) / self.std).astype(np.float32)

    def save(self, path: Path) -> None:
        """Write the scaler as JSON."""
        path.write_text(json.dumps({"mean": self.mean.tolist(), "std": self.std.tolist()}))

    @classmethod
    def load(cls, path: Path) -> FeatureScaler:
        """Read a scaler written by ``save``."""
        raw = json.loads(path.read_text())
        return cls(mean=np.asarray(raw["mean"]), std=np.asarray(raw["std"]))
