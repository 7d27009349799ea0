"""Feature sets: one module per set, each exposing ``build(bars, inputs, **params)`` and
``BOUNDS``.

A feature set receives ONE asset's bars sorted by time, plus the `FeatureInputs` it declared
it needs (the universe's bars, a sentiment or on-chain table), and returns ``ts`` plus Float64
feature columns, always including ``ret_1`` (the one-bar log return the univariate models
use). Every feature at bar t uses only data known at t (point-in-time correct); the first bars
of an indicator's warm-up are null and are dropped by windowing, never filled from the future.
``BOUNDS`` maps column-name regexes to inclusive ``(low, high)`` bounds (``None``: open) that
the data-quality suite checks after warm-up.
"""

from feature_sets.inputs import INPUT_KINDS, FeatureInputs
from feature_sets.registry import (
    FEATURE_SETS,
    FeatureSet,
    build_features,
    feature_bounds,
    feature_names,
    feature_set,
)

__all__ = ["FEATURE_SETS", "INPUT_KINDS", "FeatureInputs", "FeatureSet", "build_features",
           "feature_bounds", "feature_names", "feature_set"]
