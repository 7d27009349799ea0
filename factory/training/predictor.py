"""A saved model with its scaler and metadata, scoring a frame of features.

This is what the MLflow pyfunc wrapper serves: given the feature frame of one or several
assets (rows in time order, a ``symbol`` column when there are several), it rebuilds the
windows, applies the training fold's scaler and returns one score per row (NaN where a row
has no complete window yet). No MLflow here: the core runs without it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from factory.training.windows import FeatureScaler, sliding_windows
from model_zoo.registry import load_model


class Predictor:
    """Scores feature frames with a model saved by ``factory.training.fit``."""

    def __init__(self, directory: Path) -> None:
        self.meta = json.loads((directory / "meta.json").read_text())
        self.scaler = FeatureScaler.load(directory / "scaler.json")
        self.model = load_model(self.meta["arch"], directory / "model")

    @property
    def feature_names(self) -> list[str]:
        """Columns the input frame must carry, in any order."""
        return list(self.meta["feature_names"])

    def predict_frame(self, frame: pd.DataFrame | pl.DataFrame) -> np.ndarray:
        """Score every row of ``frame``.

        Parameters
        ----------
        frame : pandas or polars DataFrame
            Feature columns named in ``feature_names``; rows in time order per asset; an
            optional ``symbol`` column separates assets.

        Returns
        -------
        np.ndarray
            ``(len(frame),)`` float64 predicted forward returns, NaN without a full window.
        """
        data = pl.from_pandas(frame) if isinstance(frame, pd.DataFrame) else frame
        missing = [c for c in self.feature_names if c not in data.columns]
        if missing:
            raise ValueError(f"input frame lacks feature columns {missing}")
        codes = (data["symbol"].cast(pl.Utf8).rank("dense").cast(pl.Int64).to_numpy()
                 if "symbol" in data.columns else np.zeros(data.height, dtype=np.int64))
        matrix = data.select(self.feature_names).to_numpy().astype(np.float64)
        scores = np.full(data.height, np.nan)
        for code in np.unique(codes):
            rows = np.flatnonzero(codes == code)
            X, ends = sliding_windows(matrix[rows], int(self.meta["lookback"]))
            if len(ends):
                groups = np.full(len(ends), code, dtype=np.int64)
                scores[rows[ends]] = self.model.predict(self.scaler.transform(X), groups)
        return scores
