"""The Optuna storage at scale: a study on the real PostgreSQL at 127.0.0.1:5432 (a fresh
database per test; skipped, saying why, where none answers), trained, resumed and read back.
"""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest

from factory.config import load_config
from factory.data.sources import synthetic_bars
from factory.search import plan_studies, run_study, storage_url
from factory.search.storage import STORAGE_ENV
from factory.training.datasets import DatasetRef, cache_features

SYMBOLS = ("AAA", "BBB")


def test_a_study_lives_and_resumes_on_postgresql(postgres_url, tmp_path, monkeypatch):
    config = load_config("smoke")
    with_password = postgres_url.replace("://postgres@", "://postgres:secret@", 1)
    assert with_password != postgres_url  # trust auth: the password only tests its redaction
    monkeypatch.setenv(STORAGE_ENV, with_password)
    storage = storage_url(config.search, tmp_path)
    assert storage.startswith("postgresql+psycopg://")  # a plain URL gets the psycopg driver
    ref = DatasetRef(tmp_path / "cache", 1, SYMBOLS, 252.0, "1d")
    ref.bars_path().parent.mkdir(parents=True)
    synthetic_bars(symbols=SYMBOLS, n_bars=400, seed=5, signal=0.5).write_parquet(ref.bars_path())
    cache_features(ref, "raw_ohlcv", config.features["raw_ohlcv"].params)
    [plan] = [p for p in plan_studies(config, SYMBOLS, None, 1, {}, storage, 2)
              if p.space.arch == "logistic_regression"]

    first = run_study(plan, ref, tmp_path / "runs")
    second = run_study(replace(plan, n_trials=1), ref, tmp_path / "runs")
    assert len(first.new) == 2 and len(second.new) == 1
    assert "postgresql+psycopg://" in second.storage and "secret" not in second.storage
    study = optuna.load_study(study_name=plan.name, storage=storage)
    trained = [t for t in study.trials if "outcome" in t.user_attrs]
    assert [t.number for t in trained] == [r.number for r in second.trials]
    assert len({t.user_attrs["spec_id"] for t in trained}) == 3
    assert study.user_attrs == {} and study.direction == optuna.study.StudyDirection.MAXIMIZE
    with pytest.raises(ValueError, match="Optuna storage"):
        run_study(replace(plan, storage=storage + "_no_such_db"), ref, tmp_path / "runs")
