"""Feature sets that read a panel, a sentiment or an on-chain table train and serve end to end
(real lake, real fit, real predictor), and the grid keeps or drops them by what the universe has.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from factory.config import load_config
from factory.data.lake import Lake
from factory.data.side_tables import ingest_side_table
from factory.data.sources import synthetic_bars
from factory.evaluation.live import live_returns
from factory.grid import expand
from factory.training.datasets import (
    DatasetRef,
    cache_bars,
    cache_features,
    lake_missing_inputs,
    universe_missing_inputs,
)
from factory.training.fit import evaluate_spec
from factory.training.predictor import Predictor
from feature_sets import FEATURE_SETS

COINS = ("BTC", "ETH")


def _daily_rows(bars: pl.DataFrame, columns: dict[str, tuple[float, float]], seed: int,
                hour: int) -> pl.DataFrame:
    """One row per symbol and day, stamped ``hour`` o'clock, with uniform random metrics."""
    rng = np.random.default_rng(seed)
    days = bars.select("symbol", (pl.col("ts").dt.truncate("1d") + timedelta(hours=hour))
                       .alias("ts"))
    return days.with_columns(
        pl.Series(name, rng.uniform(low, high, days.height)) for name, (low, high)
        in columns.items())


@pytest.fixture(scope="module")
def crypto_lake(tmp_path_factory) -> Lake:
    lake = Lake(tmp_path_factory.mktemp("crypto") / "lake")
    bars = synthetic_bars(symbols=COINS, n_bars=900, seed=4, start="2020-01-01")
    lake.ingest_bars(bars, "coins.csv", calendar="crypto")
    onchain = _daily_rows(bars, {"active_addresses": (8e5, 1.2e6),
                                 "transaction_count": (2e5, 4e5)}, seed=1, hour=1)
    ingest_side_table(lake, onchain, "onchain", "chain.csv")
    sentiment = _daily_rows(bars, {"score": (-1.0, 1.0), "count": (1.0, 30.0)}, seed=2, hour=9)
    ingest_side_table(lake, sentiment, "sentiment", "news.csv")
    return lake


def test_a_crypto_universe_with_both_tables_uses_all_eight_feature_sets(crypto_lake):
    missing = lake_missing_inputs(crypto_lake, COINS)
    assert missing == {}
    used = {s.feature_set for s in expand(load_config("full"), COINS, missing).specs}
    assert used == set(FEATURE_SETS)


def test_the_grid_names_what_a_universe_lacks(crypto_lake):
    alone = lake_missing_inputs(crypto_lake, ("BTC",))
    assert set(alone) == {"panel"}
    lake = Lake(crypto_lake.root + "-bare")
    lake.ingest_bars(synthetic_bars(symbols=COINS, n_bars=300, seed=4, start="2020-01-01"),
                     "coins.csv", calendar="crypto")
    bare = lake_missing_inputs(lake, COINS)
    assert set(bare) == {"sentiment", "onchain"}
    assert "factory ingest --kind onchain" in bare["onchain"]
    excluded = {c.feature_set: c.reason for c in expand(load_config("full"), COINS, bare).excluded
                if c.arch == "lightgbm"}
    assert "needs onchain" in excluded["onchain"] and "needs sentiment" in excluded["sentiment"]


def test_equities_outside_the_packaged_vix_lack_sentiment():
    inside = synthetic_bars(symbols=("AAA", "BBB"), n_bars=600, seed=1, start="2015-01-01")
    before = synthetic_bars(symbols=("AAA", "BBB"), n_bars=600, seed=1, start="2005-01-01")
    from factory.training.feature_inputs import missing_inputs

    assert "sentiment" not in missing_inputs(("AAA", "BBB"), "equity", inside, {})
    assert "packaged VIX" in missing_inputs(("AAA", "BBB"), "equity", before, {})["sentiment"]


@pytest.mark.parametrize("feature_set", ["cross_asset", "sentiment", "onchain"])
def test_side_input_feature_sets_train_and_serve(crypto_lake, tmp_path, feature_set):
    ref = DatasetRef.for_lake(tmp_path / "cache", crypto_lake, crypto_lake.version(), COINS)
    cache_bars(crypto_lake, ref)
    assert universe_missing_inputs(ref) == {}
    config = load_config("smoke")
    spec = next(s for s in expand(config, COINS, {}).specs if s.arch == "lightgbm")
    params = load_config("full").features[feature_set].params
    spec = spec.model_copy(update={"feature_set": feature_set, "feature_params": params})
    cache_features(ref, feature_set, params)
    outcome = evaluate_spec(spec, ref, tmp_path / "model")
    assert outcome.status == "FINISHED", outcome.error
    assert outcome.metrics["n_obs"] > 50
    predictor = Predictor(tmp_path / "model")
    assert predictor.meta["calendar"] == "crypto"
    assert dict(predictor.meta["side_versions"]) == {"onchain": 0, "sentiment": 0}
    bars = crypto_lake.read_bars()
    side = {t: pl.read_parquet(ref.side_path(t)) for t, _ in ref.side_versions}
    served = predictor.predict_bars(bars, side)
    assert served["score"].drop_nans().len() > 0
    after = bars["ts"].unique().sort()[-40]  # the paper record the snapshot keeps, with the tables
    live = live_returns(predictor, bars, after=after, cost_bps=2.0, side_tables=side)
    assert live.height > 30 and live["ts"].min() > after
    if feature_set != "cross_asset":
        with pytest.raises(ValueError, match=f"needs {feature_set}"):
            predictor.predict_bars(bars)
