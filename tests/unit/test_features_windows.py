"""Feature sets are point-in-time correct; windows and the scaler behave."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from factory.data.sources import synthetic_bars
from factory.training.datasets import DatasetRef
from factory.training.windows import FeatureScaler, sliding_windows
from feature_sets import FEATURE_SETS, build_features

BARS_ONLY = sorted(n for n, f in FEATURE_SETS.items() if f.needs == ("bars",))
"""Feature sets built from an asset's bars alone (test_feature_point_in_time covers all)."""


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return synthetic_bars(symbols=("SYN",), n_bars=400, seed=3)


@pytest.mark.parametrize("name", BARS_ONLY)
def test_features_at_t_do_not_change_when_the_future_is_removed(bars, name):
    full = build_features(name, bars)
    cut = 250
    truncated = build_features(name, bars.head(cut))
    np.testing.assert_allclose(
        full.head(cut).drop("ts").to_numpy(),
        truncated.drop("ts").to_numpy(),
        rtol=1e-9,
        atol=1e-12,
        equal_nan=True,
    )


@pytest.mark.parametrize("name", BARS_ONLY)
def test_feature_set_shape_and_ret_1(bars, name):
    frame = build_features(name, bars)
    assert frame.height == bars.height
    assert frame["ts"].to_list() == bars["ts"].to_list()
    close = bars["close"].to_numpy()
    np.testing.assert_allclose(frame["ret_1"].to_numpy()[1:], np.log(close[1:] / close[:-1]))
    assert frame.drop("ts").tail(100).null_count().sum_horizontal().item() == 0


def test_build_features_rejects_several_assets():
    two = synthetic_bars(symbols=("A", "B"), n_bars=50, seed=1)
    with pytest.raises(ValueError, match="one asset"):
        build_features("raw_ohlcv", two)


def test_sliding_windows_skip_incomplete_history():
    matrix = np.arange(20, dtype=float).reshape(10, 2)
    matrix[3, 1] = np.nan
    X, ends = sliding_windows(matrix, 3)
    assert ends.tolist() == [2, 6, 7, 8, 9]
    np.testing.assert_array_equal(X[1], matrix[4:7])
    assert X.dtype == np.float32


def test_scaler_fits_on_training_rows_only_and_round_trips(tmp_path):
    train = np.array([[1.0, 10.0], [3.0, 10.0]])
    scaler = FeatureScaler.fit(train)
    np.testing.assert_allclose(scaler.transform(np.array([[2.0, 10.0]])), [[0.0, 0.0]])
    scaler.save(tmp_path / "s.json")
    again = FeatureScaler.load(tmp_path / "s.json")
    np.testing.assert_array_equal(again.mean, scaler.mean)
    np.testing.assert_array_equal(again.std, [1.0, 1.0])


def test_a_feature_cache_path_never_leaves_the_cache(tmp_path):
    ref = DatasetRef(tmp_path / "cache", 0, ("../../x",), 252.0, "1d")
    with pytest.raises(ValueError, match="outside"):
        ref.features_path("raw_ohlcv", {}, "../../x")
    inside = DatasetRef(tmp_path / "cache", 0, ("BTC-USD",), 252.0, "1d")
    path = inside.features_path("raw_ohlcv", {}, "BTC-USD")
    assert path.name == "BTC-USD.parquet" and path.is_relative_to(tmp_path / "cache")
