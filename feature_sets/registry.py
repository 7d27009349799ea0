"""Name -> feature set: its module (imported lazily) and the inputs it needs."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from feature_sets.inputs import INPUT_KINDS, FeatureInputs


@dataclass(frozen=True)
class FeatureSet:
    """A registered feature set.

    Attributes
    ----------
    module
        Dotted module path; it defines ``build(bars, inputs, **params)`` and ``BOUNDS``.
    needs
        Input kinds it reads (keys of ``INPUT_KINDS``); the grid drops it, with the reason,
        for a universe that lacks one.
    summary
        One line for ``factory features``.
    """

    module: str
    needs: tuple[str, ...]
    summary: str

    def __post_init__(self) -> None:
        unknown = sorted(set(self.needs) - set(INPUT_KINDS))
        if unknown:
            raise ValueError(f"unknown input kinds {unknown}; known: {sorted(INPUT_KINDS)}")


FEATURE_SETS: dict[str, FeatureSet] = {
    "raw_ohlcv": FeatureSet("feature_sets.raw_ohlcv", ("bars",),
                            "log returns, normalised prices, volume over its rolling mean"),
    "technical": FeatureSet("feature_sets.technical", ("bars",),
                            "SMA, EMA, WMA, RSI, MACD, Bollinger, stochastic, ATR, calendar"),
    "momentum": FeatureSet("feature_sets.momentum", ("bars",),
                           "multi-horizon momentum and its acceleration"),
    "volatility": FeatureSet("feature_sets.volatility", ("bars",),
                             "ATR, close-to-close, Parkinson, Garman-Klass, Yang-Zhang"),
    "order_flow": FeatureSet("feature_sets.order_flow", ("bars",),
                             "bulk-volume classification, VPIN, order-flow imbalance proxy"),
    "cross_asset": FeatureSet("feature_sets.cross_asset", ("bars", "panel"),
                              "rolling correlations and betas to the universe, relative strength"),
    "sentiment": FeatureSet("feature_sets.sentiment", ("bars", "sentiment"),
                            "sentiment table aggregates and a VIX fear/greed proxy"),
    "onchain": FeatureSet("feature_sets.onchain", ("bars", "onchain"),
                          "on-chain activity aggregates (addresses, transactions, flows)"),
}


def feature_set(name: str) -> FeatureSet:
    """The registered feature set ``name``.

    Raises
    ------
    KeyError
        Naming the known feature sets.
    """
    if name not in FEATURE_SETS:
        raise KeyError(f"unknown feature set {name!r}; known: {sorted(FEATURE_SETS)}")
    return FEATURE_SETS[name]


def _module(name: str):
    return importlib.import_module(feature_set(name).module)


def feature_bounds(name: str) -> dict[str, tuple[float | None, float | None]]:
    """The value bounds the feature set declares: column regex -> (low, high), inclusive."""
    return dict(_module(name).BOUNDS)


def build_features(
    name: str,
    bars: pl.DataFrame,
    params: Mapping[str, float] | None = None,
    inputs: FeatureInputs | None = None,
) -> pl.DataFrame:
    """Build feature set ``name`` for one asset's bars.

    Parameters
    ----------
    name
        A key of ``FEATURE_SETS``.
    bars
        One asset's bars (``symbol``, ``ts``, OHLCV); sorted here by ``ts``.
    params
        The feature set's parameters (conf/features.yaml).
    inputs
        What else it reads (default: none beyond the bars, with the symbol's name).

    Returns
    -------
    pl.DataFrame
        ``ts`` and Float64 feature columns, one row per input bar, ``ret_1`` among them.

    Raises
    ------
    ValueError
        When the bars hold more than one asset, or an input the set needs is missing.
    """
    if bars["symbol"].n_unique() > 1:
        raise ValueError(f"build_features({name!r}) takes one asset's bars at a time")
    inputs = inputs or FeatureInputs(symbol=str(bars["symbol"][0]) if bars.height else "")
    missing = [k for k in feature_set(name).needs if inputs.lacks(k)]
    if missing:
        raise ValueError(f"feature set {name!r} needs {', '.join(missing)} for "
                         f"{inputs.symbol!r}: {'; '.join(INPUT_KINDS[k] for k in missing)}")
    frame = _module(name).build(bars.sort("ts"), inputs, **dict(params or {}))
    if "ret_1" not in frame.columns:
        raise ValueError(f"feature set {name!r} must provide the ret_1 column")
    return frame


def feature_names(frame: pl.DataFrame) -> tuple[str, ...]:
    """The feature columns of a built frame (everything except ``ts``)."""
    return tuple(c for c in frame.columns if c != "ts")
