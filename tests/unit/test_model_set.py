"""Which models trade and the target weights their out-of-sample positions add up to."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from factory.stages import ARCHIVED, PRODUCTION, STAGING
from factory.trading.model_set import (
    NoModelsError,
    choose_models,
    expected_returns,
    target_weights,
)


def latest(stages: dict[str, str], symbols: str = "A,B") -> pl.DataFrame:
    names = sorted(stages)
    return pl.DataFrame({
        "model_name": names, "version": ["1"] * len(names), "stage": [stages[n] for n in names],
        "run_id": [f"run-{n}" for n in names], "spec_id": [f"spec-{n}" for n in names],
        "lake_version": ["0"] * len(names), "symbols": [symbols] * len(names),
        "cost_bps": [2.0] * len(names), "execution_price": ["close"] * len(names)})


def oos(positions: dict[str, list[float]], start: int = 0) -> pl.DataFrame:
    """Out-of-sample rows of each symbol over consecutive days from day ``start``."""
    rows = []
    for symbol, values in positions.items():
        for i, position in enumerate(values):
            rows.append({"symbol": symbol, "ts": datetime(2020, 1, 1) + timedelta(days=start + i),
                         "position": position, "score": position / 100})
    return pl.DataFrame(rows)


def test_production_set_shares_capital_by_the_selections_allocation():
    models = choose_models(latest({"m1": PRODUCTION, "m2": PRODUCTION, "m3": STAGING}),
                           {"m1": 0.3, "m2": 0.1, "m3": 0.6})
    assert models.names == ["m1", "m2"]
    assert models.models["weight"].to_list() == pytest.approx([0.75, 0.25])
    assert models.description.startswith("Production set of 2")
    assert "chose this set by these same out-of-sample returns" in models.caveat


def test_equal_shares_before_any_selection():
    models = choose_models(latest({"m1": PRODUCTION, "m2": PRODUCTION}), None)
    assert models.models["weight"].to_list() == [0.5, 0.5]


def test_staging_only_when_asked_and_it_says_so():
    registry = latest({"m1": STAGING, "m2": ARCHIVED})
    with pytest.raises(NoModelsError, match="--include-staging"):
        choose_models(registry, None)
    models = choose_models(registry, None, include_staging=True)
    assert models.names == ["m1"]
    assert "Staging" in models.description and "not Production" in models.description


def test_one_named_model_whatever_its_stage():
    models = choose_models(latest({"m1": ARCHIVED, "m2": PRODUCTION}), {"m2": 1.0}, model="m1")
    assert models.names == ["m1"] and models.models["weight"].to_list() == [1.0]
    assert models.caveat == ""
    with pytest.raises(NoModelsError, match="no registered model named 'zz'"):
        choose_models(latest({"m1": ARCHIVED}), None, model="zz")


def test_one_models_weights_are_its_positions_over_its_assets():
    """Alone, a model's weights reproduce the factory's equal-weighted mean over assets."""
    models = choose_models(latest({"m1": PRODUCTION}), None)
    weights = target_weights(models, {"m1": oos({"A": [1.0, -0.5], "B": [0.2, 0.0]})})
    assert weights.columns == ["ts", "symbol", "weight"]
    assert weights["weight"].to_list() == pytest.approx([0.5, 0.1, -0.25, 0.0])


def test_the_set_trades_only_bars_every_model_decided():
    models = choose_models(latest({"m1": PRODUCTION, "m2": PRODUCTION}), {"m1": 3, "m2": 1})
    weights = target_weights(models, {
        "m1": oos({"A": [1.0, 1.0, 1.0], "B": [1.0, 1.0, 1.0]}),
        "m2": oos({"A": [-1.0, -1.0, -1.0], "B": [0.0, 0.0, 0.0]}, start=1)})
    assert weights["ts"].n_unique() == 2  # days 1 and 2
    by_symbol = dict(zip(weights["symbol"], weights["weight"], strict=False))
    np.testing.assert_allclose(by_symbol["A"], 0.75 * 0.5 - 0.25 * 0.5)
    np.testing.assert_allclose(by_symbol["B"], 0.75 * 0.5)


def test_models_without_a_shared_bar_or_predictions_are_refused():
    models = choose_models(latest({"m1": PRODUCTION, "m2": PRODUCTION}), None)
    with pytest.raises(ValueError, match="no out-of-sample predictions for m2"):
        target_weights(models, {"m1": oos({"A": [1.0]})})
    with pytest.raises(ValueError, match="shares no out-of-sample bar"):
        target_weights(models, {"m1": oos({"A": [1.0]}), "m2": oos({"A": [1.0]}, start=5)})
    with pytest.raises(ValueError, match="lack \\['position'\\]"):
        target_weights(models, {"m1": oos({"A": [1.0]}).drop("position"),
                                "m2": oos({"A": [1.0]})})


def test_mixed_evaluation_conventions_are_named():
    registry = latest({"m1": PRODUCTION, "m2": PRODUCTION}).with_columns(
        pl.Series("cost_bps", [2.0, 5.0]))
    with pytest.raises(ValueError, match="mixes evaluation conventions"):
        choose_models(registry, None).trading_convention()
    assert choose_models(latest({"m1": PRODUCTION}), None).trading_convention() == (2.0, "close")


def test_expected_returns_are_the_share_weighted_scores():
    models = choose_models(latest({"m1": PRODUCTION, "m2": PRODUCTION}), {"m1": 3, "m2": 1})
    mu = expected_returns(models, {"m1": oos({"A": [1.0, 2.0]}), "m2": oos({"A": [-1.0, 0.0]})})
    assert mu.columns == ["ts", "symbol", "mu"]
    np.testing.assert_allclose(mu["mu"].to_numpy(), [0.0075 - 0.0025, 0.015])
