"""A saved model with its scaler and metadata, turning raw bars into scores and positions.

This is what the MLflow pyfunc wrapper serves. Given the OHLCV bars of one or several assets
(columns ``ts, open, high, low, close, volume`` and, for several assets, ``symbol``), it
builds the model's own feature set with the parameters it was trained with (``meta.json``),
cuts the lookback windows, applies the training fold's scaler, and returns per bar the score
and the position ``clip(score / signal_scale, -1, 1)``: the rule the evaluation traded
(``factory.evaluation.signals.positions_from_scores``). Rows without a complete window (the
feature warm-up and the first ``lookback - 1`` bars) get NaN for both. No MLflow here: the
core runs without it.

Scores equal the evaluation's out-of-sample scores for the same bars when the model sees the
same history: exactly for features with a finite memory (``raw_ohlcv``), while indicators
that smooth over the whole past (TA-Lib's RSI, ATR, ADX in ``technical``) converge to the
evaluated values only after enough bars, so pass the full history you have.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from factory.evaluation.signals import positions_from_scores
from factory.training.feature_inputs import inputs_for
from factory.training.normalisers import load_normaliser
from factory.training.windows import sliding_windows
from feature_sets import build_features
from model_zoo.registry import capabilities, load_model

BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
"""Columns every input frame needs; ``symbol`` is optional (one asset without it)."""
SINGLE_ASSET = "_single_asset"
ROW = "_row"


class Predictor:
    """Scores raw bars (or, for models logged before bars were served, feature frames).

    Parameters
    ----------
    directory : Path
        A model directory written by ``factory.training.fit``: ``meta.json``,
        ``scaler.json`` and the architecture's ``model/`` folder.
    """

    def __init__(self, directory: Path) -> None:
        self.meta = json.loads((Path(directory) / "meta.json").read_text())
        self.scaler = load_normaliser(Path(directory) / "scaler.json")
        self.model = load_model(self.meta["arch"], Path(directory) / "model")
        for key, value in self.feature_params.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{directory}/meta.json: feature parameter {key!r} must be "
                                 f"a number, got {value!r}")

    @property
    def feature_names(self) -> list[str]:
        """Feature columns the model reads, in training order."""
        return list(self.meta["feature_names"])

    @property
    def feature_params(self) -> dict[str, int | float]:
        """Parameters of the feature set, typed as in training."""
        return dict(self.meta["feature_params"])

    @property
    def lookback(self) -> int:
        """Bars in one window."""
        return int(self.meta["lookback"])

    @property
    def min_bars(self) -> int:
        """Bars an asset needs for one score: the feature warm-up plus the lookback."""
        return int(self.meta.get("min_bars", self.lookback))

    def predict_bars(self, bars: pd.DataFrame | pl.DataFrame,
                     side_tables: Mapping[str, pl.DataFrame] | None = None) -> pl.DataFrame:
        """Score and position for every bar of ``bars``, in the input's row order.

        Parameters
        ----------
        bars : pandas or polars DataFrame
            ``ts, open, high, low, close, volume`` and optionally ``symbol``; other columns
            are ignored. Rows may come in any order; each asset needs at least
            :attr:`min_bars` bars and no two bars of an asset may share a ``ts``. A feature
            set that reads the universe (``cross_asset``) takes it from these bars.
        side_tables : mapping of str to polars DataFrame, optional
            ``sentiment`` / ``onchain`` rows (``symbol``, ``ts``, metrics) for a model whose
            feature set reads them.

        Returns
        -------
        pl.DataFrame
            ``score`` (the predicted forward return) and ``position`` in [-1, 1], Float64,
            one row per input row; NaN where a bar has no complete window yet.

        Raises
        ------
        ValueError
            A missing column, a repeated ``ts`` or too few bars of an asset, with its name.
        """
        data = pl.from_pandas(bars) if isinstance(bars, pd.DataFrame) else bars
        missing = [c for c in BAR_COLUMNS if c not in data.columns]
        if missing:
            raise ValueError(f"the bars lack the columns {missing}; a served model reads "
                             f"{list(BAR_COLUMNS)} and optionally symbol")
        symbol = (pl.col("symbol").cast(pl.Utf8) if "symbol" in data.columns
                  else pl.lit(SINGLE_ASSET))
        data = data.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW), symbol.alias("symbol"),
            pl.col("ts"), *(pl.col(c).cast(pl.Float64) for c in BAR_COLUMNS[1:]))
        scores = np.full(data.height, np.nan)
        assets = [(str(name), asset.sort("ts")) for (name,), asset
                  in data.group_by("symbol", maintain_order=True)]
        universe = data.drop(ROW)
        windows = [self._windows(asset, name, universe, side_tables or {})
                   for name, asset in assets]
        if capabilities(self.meta["arch"]).panel:  # all assets at once, lined up in time
            ends = np.concatenate([w[2] for w in windows])
            times = np.searchsorted(np.unique(ends), ends)
            groups = np.concatenate([np.full(len(w[0]), code, dtype=np.int64)
                                     for code, w in enumerate(windows)])
            rows = np.concatenate([w[0] for w in windows])
            if len(rows):
                scores[rows] = self.model.predict(np.concatenate([w[1] for w in windows]),
                                                  groups, times)
        else:
            for code, (rows, X, _) in enumerate(windows):
                if len(rows):
                    scores[rows] = self.model.predict(
                        X, np.full(len(rows), code, dtype=np.int64))
        positions = positions_from_scores(scores, float(self.meta["signal_scale"]))
        positions[np.isnan(scores)] = np.nan  # no window, no position (evaluation never saw it)
        return pl.DataFrame({"score": scores, "position": positions})

    def _windows(self, asset: pl.DataFrame, name: str, universe: pl.DataFrame,
                 side_tables: Mapping[str, pl.DataFrame]):
        """Input rows of one asset's complete windows (bars sorted by time), the scaled
        windows and the time of each window's last bar."""
        shown = "the bars" if name == SINGLE_ASSET else f"symbol {name!r}"
        if asset.height < self.min_bars:
            raise ValueError(
                f"{shown}: {asset.height} bars, but this model needs at least {self.min_bars} "
                f"per asset ({self.meta.get('feature_warmup_bars', 0)} of feature warm-up and "
                f"a lookback of {self.lookback})")
        repeated = asset.filter(pl.col("ts").is_duplicated())
        if repeated.height:
            raise ValueError(f"{shown}: {repeated.height} bars share a ts, e.g. "
                             f"{repeated['ts'][0]}; pass one bar per time")
        feature_set = self.meta["feature_set"]
        inputs = inputs_for(name, feature_set, self.meta.get("calendar", "equity"), universe,
                            side_tables)
        features = build_features(feature_set, asset.drop(ROW), self.feature_params, inputs)
        matrix = features.select(self.feature_names).to_numpy().astype(np.float64)
        X, ends = sliding_windows(matrix, self.lookback)
        return (asset[ROW].to_numpy()[ends], self.scaler.transform(X),
                asset["ts"].to_numpy()[ends])
