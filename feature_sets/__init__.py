"""Feature sets: one module per set, each exposing ``build(bars, **params) -> pl.DataFrame``.

A feature set receives ONE asset's bars sorted by time and returns ``ts`` plus float feature
columns, always including ``ret_1`` (the one-bar log return the univariate models use).
Every feature at bar t uses only bars up to t (point-in-time correct); the first bars of
an indicator's warm-up are null and are dropped by windowing, never filled from the future.
"""

from feature_sets.registry import FEATURE_SETS, build_features, feature_names

__all__ = ["FEATURE_SETS", "build_features", "feature_names"]
