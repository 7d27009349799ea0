"""An RL agent's fit leaves nothing behind: stable-baselines3's default logger makes a
folder ``SB3-<time>`` in the temporary directory at every ``learn`` (one per fold and
refit of every RL configuration of a factory run), which nothing removed."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from model_zoo.base import ModelConfig, SupervisedData
from model_zoo.registry import build_model


@pytest.mark.parametrize("arch", ["ppo", "dqn"])
def test_fitting_an_agent_writes_no_log_folder(arch, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("SB3_LOGDIR", raising=False)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 7, 2)).astype(np.float32)
    data = SupervisedData(X=X, y=rng.normal(0, 0.01, 300).astype(np.float32),
                          groups=np.zeros(300, dtype=np.int64))
    config = ModelConfig(hparams={"total_timesteps": 256}, feature_names=("ret_1", "noise"),
                         lookback=7, seed=0)
    model = build_model(arch, config).fit(data)
    assert np.isfinite(model.predict(X)).all()
    assert [p.name for p in tmp_path.glob("SB3-*")] == []
