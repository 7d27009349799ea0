"""Bidirectional LSTM over the window; a linear head reads both directions' last states.

Schuster and Paliwal (1997), "Bidirectional Recurrent Neural Networks", IEEE Trans. Signal
Processing 45(11); LSTM cells (Hochreiter and Schmidhuber 1997). The backward direction reads
the window from its last bar to its first, so it runs only inside the window, which ends at
the decision bar: no bar after the decision bar is ever seen (no look-ahead).

Training, prediction and persistence come from :mod:`model_zoo.lightning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from model_zoo.base import Capabilities, ModelConfig
from model_zoo.lightning import TorchNetModel
from model_zoo.nets.blocks import check_dropout, check_positive
from model_zoo.registry import ARCHITECTURES


class BiLSTMNetwork(nn.Module):
    """Stacked bidirectional LSTM -> ``Linear(2 * hidden_size, 1)``.

    The head reads the concatenation of the forward direction's state after the last bar
    and the backward direction's state after the first bar (each direction's final state,
    top layer).

    Parameters
    ----------
    n_features : int
        Size of the last axis of the input windows.
    hidden_size : int
        LSTM hidden units per direction and layer.
    num_layers : int
        Stacked bidirectional layers.
    dropout : float
        Dropout between stacked layers (only with several) and before the head.
    """

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(input_size=n_features, hidden_size=hidden_size,
                            num_layers=num_layers, dropout=dropout if num_layers > 1 else 0.0,
                            batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        _, (h_n, _) = self.lstm(x)
        last_states = torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return self.head(self.dropout(last_states)).squeeze(-1)


class BiLSTMModel(TorchNetModel):
    """Bidirectional LSTM regressor of the forward return.

    Hyperparameters: ``hidden_size`` (units per direction, 32), ``num_layers`` (1),
    ``dropout`` (0.1), plus :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["bilstm"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "num_layers": 1,
        "dropout": 0.1,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        check_positive("BiLSTMModel", params, "hidden_size", "num_layers")
        check_dropout("BiLSTMModel", params["dropout"])
        return BiLSTMNetwork(
            n_features=len(config.feature_names),
            hidden_size=params["hidden_size"],
            num_layers=params["num_layers"],
            dropout=params["dropout"],
        )
