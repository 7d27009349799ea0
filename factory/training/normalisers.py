"""Feature normalisers, fitted on a training fold's bars only and saved with the model.

``zscore`` (`FeatureScaler`): subtract the training mean, divide by the training standard
deviation (ddof 0). ``rank_gauss``: map each feature through its training distribution
function (piecewise linear between ``n_quantiles`` empirical quantiles) to a uniform, then
through the inverse normal CDF, so heavy-tailed features (volume, volatility, VPIN) become
roughly Gaussian; values beyond the training range map to the extreme quantiles' scores
(never to infinity). Neither ever sees a validation or test bar (rule 6).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtri

from factory.training.windows import FeatureScaler

NORMALISERS = ("zscore", "rank_gauss")
"""The normalisers a feature set can be configured with (conf/features.yaml)."""


@dataclass(frozen=True)
class RankGaussScaler:
    """Per-feature rank-gauss transform fitted on training bars.

    Attributes
    ----------
    quantiles
        ``(K, F)`` training quantiles of each feature at ``levels``.
    levels
        ``(K,)`` probabilities in (0, 1), increasing.
    """

    quantiles: np.ndarray
    levels: np.ndarray

    @classmethod
    def fit(cls, rows: np.ndarray, n_quantiles: int = 1000) -> RankGaussScaler:
        """Fit on ``(m, F)`` training bars (NaN-free)."""
        k = max(2, min(n_quantiles, len(rows)))
        levels = (np.arange(k) + 0.5) / k
        return cls(quantiles=np.quantile(rows.astype(np.float64), levels, axis=0),
                   levels=levels)

    def transform(self, windows: np.ndarray) -> np.ndarray:
        """Transform ``(n, L, F)`` windows (or ``(m, F)`` rows); returns float32."""
        out = np.empty(windows.shape, dtype=np.float64)
        for f in range(self.quantiles.shape[1]):
            grid, idx = _strictly_increasing(self.quantiles[:, f], self.levels)
            out[..., f] = np.interp(windows[..., f], grid, idx)
        return ndtri(out).astype(np.float32)

    def save(self, path: Path) -> None:
        """Write the transform as JSON."""
        path.write_text(json.dumps({"kind": "rank_gauss", "quantiles": self.quantiles.tolist(),
                                    "levels": self.levels.tolist()}))


def _strictly_increasing(values: np.ndarray, levels: np.ndarray):
    """Quantiles with ties merged (each tie gets its mean level), for ``np.interp``."""
    unique, inverse = np.unique(values, return_inverse=True)
    mean_levels = np.bincount(inverse, weights=levels) / np.bincount(inverse)
    if len(unique) == 1:  # a constant feature: everything maps to the median
        return np.array([unique[0] - 1.0, unique[0] + 1.0]), np.array([0.5, 0.5])
    return unique, mean_levels


def fit_normaliser(kind: str, rows: np.ndarray) -> FeatureScaler | RankGaussScaler:
    """Fit normaliser ``kind`` (one of `NORMALISERS`) on ``(m, F)`` training bars.

    Raises
    ------
    ValueError
        For an unknown kind.
    """
    if kind == "zscore":
        fitted = FeatureScaler.fit(rows)
        # float64, as ``load_normaliser`` returns it, so serving computes what was evaluated
        return FeatureScaler(mean=fitted.mean.astype(np.float64),
                             std=fitted.std.astype(np.float64))
    if kind == "rank_gauss":
        return RankGaussScaler.fit(rows)
    raise ValueError(f"unknown normaliser {kind!r}; known: {NORMALISERS}")


def load_normaliser(path: Path) -> FeatureScaler | RankGaussScaler:
    """Read a normaliser written by either class's ``save``."""
    raw = json.loads(Path(path).read_text())
    if raw.get("kind") == "rank_gauss":
        return RankGaussScaler(quantiles=np.asarray(raw["quantiles"]),
                               levels=np.asarray(raw["levels"]))
    return FeatureScaler.load(Path(path))
