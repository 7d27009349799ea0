"""Normalisers are fitted on training bars only, round-trip through JSON, and a spec can pick
rank-gauss without changing the ids of specs that keep the default."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from factory.config import load_config
from factory.grid import expand
from factory.training.normalisers import (
    RankGaussScaler,
    fit_normaliser,
    load_normaliser,
)
from factory.training.windows import FeatureScaler


@pytest.fixture()
def heavy_tailed() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([rng.standard_t(2, 4000), rng.lognormal(0, 1.5, 4000)])


def test_rank_gauss_makes_training_features_gaussian(heavy_tailed):
    scaler = fit_normaliser("rank_gauss", heavy_tailed)
    out = scaler.transform(heavy_tailed).astype(np.float64)
    for column in out.T:
        assert abs(column.mean()) < 0.02 and abs(column.std() - 1) < 0.05
        assert stats.kstest(column, "norm").pvalue > 0.05
    raw_p = stats.kstest(stats.zscore(heavy_tailed[:, 1]), "norm").pvalue
    assert raw_p < 1e-6  # the raw lognormal feature is far from Gaussian


def test_rank_gauss_is_fitted_on_training_rows_only(heavy_tailed):
    train, test = heavy_tailed[:2000], heavy_tailed[2000:] * 100.0  # a test block unlike train
    scaler = fit_normaliser("rank_gauss", train)
    assert np.array_equal(scaler.quantiles, RankGaussScaler.fit(train).quantiles)
    out = scaler.transform(test)
    assert np.isfinite(out).all()  # beyond the training range: the extreme quantile's score
    assert out.max() <= scaler.transform(train).max() + 1e-6


def test_windows_and_constant_features(heavy_tailed):
    rows = np.column_stack([heavy_tailed[:, 0], np.full(len(heavy_tailed), 3.0)])
    scaler = fit_normaliser("rank_gauss", rows)
    windows = rows[:40].reshape(4, 10, 2)
    out = scaler.transform(windows)
    assert out.shape == (4, 10, 2) and out.dtype == np.float32
    assert np.allclose(out[..., 1], 0.0)  # a constant feature sits at the median


@pytest.mark.parametrize("kind", ["zscore", "rank_gauss"])
def test_normalisers_round_trip(heavy_tailed, tmp_path, kind):
    scaler = fit_normaliser(kind, heavy_tailed)
    scaler.save(tmp_path / "scaler.json")
    again = load_normaliser(tmp_path / "scaler.json")
    assert type(again) is type(scaler)
    np.testing.assert_array_equal(again.transform(heavy_tailed), scaler.transform(heavy_tailed))
    assert isinstance(fit_normaliser("zscore", heavy_tailed), FeatureScaler)


def test_unknown_normaliser_is_refused(heavy_tailed):
    with pytest.raises(ValueError, match="unknown normaliser 'minmax'"):
        fit_normaliser("minmax", heavy_tailed)


def test_rank_gauss_changes_the_spec_id_but_the_default_keeps_earlier_ids():
    spec = expand(load_config("smoke"), ("AAA",)).specs[0]
    assert spec.normaliser == "zscore" and "normaliser" not in spec.canonical_json()
    ranked = spec.model_copy(update={"normaliser": "rank_gauss"})
    assert ranked.id != spec.id and '"normaliser":"rank_gauss"' in ranked.canonical_json()
