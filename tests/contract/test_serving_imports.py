"""Loading a trained net to serve it needs torch, not Lightning: the Lightning import alone
took 3-7 s of a served LSTM's load time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from model_zoo.base import ModelConfig, SupervisedData
from model_zoo.registry import build_model

LOAD_AND_PREDICT = textwrap.dedent("""
    import sys
    import numpy as np
    from model_zoo.registry import load_model
    model = load_model("lstm", sys.argv[1])
    scores = model.predict(np.zeros((3, 5, 2), dtype=np.float32))
    print(len(scores), "lightning" in sys.modules)
""")


def test_a_saved_lstm_loads_and_predicts_without_importing_lightning(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5, 2)).astype(np.float32)
    config = ModelConfig(hparams={"hidden_size": 4, "max_epochs": 1}, feature_names=("a", "b"),
                         lookback=5)
    model = build_model("lstm", config).fit(SupervisedData(X=X, y=X[:, -1, 0]))
    model.save(tmp_path / "model")
    done = subprocess.run([sys.executable, "-c", LOAD_AND_PREDICT, str(tmp_path / "model")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["3", "False"]
