"""LSTM over the window; a linear head reads the last time step's hidden state.

Training, prediction and persistence come from :mod:`model_zoo.lightning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from model_zoo.base import Capabilities, ModelConfig
from model_zoo.lightning import TorchNetModel
from model_zoo.registry import ARCHITECTURES


class LSTMNetwork(nn.Module):
    """Stacked LSTM -> ``Linear(hidden_size, 1)`` on the last hidden state.

    Parameters
    ----------
    n_features : int
        Size of the last axis of the input windows.
    hidden_size : int
        LSTM hidden units per layer.
    num_layers : int
        Stacked LSTM layers.
    dropout : float
        Dropout between stacked layers (ignored by torch when ``num_layers == 1``,
        so it is only passed on when there are several).
    """

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(
            input_size=n_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        output, _ = self.lstm(x)
        return self.head(output[:, -1]).squeeze(-1)


class LSTMModel(TorchNetModel):
    """LSTM regressor of the forward return (hyperparameters: ``network_defaults`` plus
    :class:`~model_zoo.lightning.TrainingHParams`)."""

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["lstm"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "num_layers": 1,
        "dropout": 0.0,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        return LSTMNetwork(
            n_features=len(config.feature_names),
            hidden_size=params["hidden_size"],
            num_layers=params["num_layers"],
            dropout=params["dropout"],
        )
