"""The shared loop's L1 penalty: the nets' "regularisation: L1 / L2 / both" axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_zoo.lightning import TrainingHParams
from model_zoo.training_loop import fit_network, l1_norm


def _fit(l1: float) -> torch.nn.Module:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, 12)).astype(np.float32)
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.1 * rng.normal(size=512)).astype(np.float32)
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(),
                                  torch.nn.Linear(16, 1), torch.nn.Flatten(0))
    training = TrainingHParams(learning_rate=0.01, l1=l1, max_epochs=30, batch_size=128,
                               accelerator="cpu")
    trained, _, _ = fit_network(network, (X, y), None, training, seed=0)
    return trained


def test_an_l1_penalty_shrinks_the_weights_and_spares_the_biases():
    plain, penalised = _fit(0.0), _fit(0.01)
    with torch.no_grad():
        assert float(l1_norm(penalised)) < 0.6 * float(l1_norm(plain))
    bias_only = torch.nn.Linear(3, 1)
    with torch.no_grad():
        bias_only.weight.zero_()
        bias_only.bias.fill_(5.0)
    with torch.no_grad():
        assert float(l1_norm(bias_only)) == 0.0


def test_a_negative_penalty_is_refused():
    with pytest.raises(ValueError, match="invalid training hyperparameters"):
        TrainingHParams(l1=-1e-5)
