"""GRU layers feeding LSTM layers; a linear head reads the last bar's LSTM state.

A hybrid recurrent stack: GRU cells (Cho et al. 2014, "Learning Phrase Representations
using RNN Encoder-Decoder for Statistical Machine Translation") encode the window, and LSTM
cells (Hochreiter and Schmidhuber 1997) read the GRU's outputs. The GRU's cheaper gating
does the first pass, the LSTM's separate memory cell the second.

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


class GRULSTMNetwork(nn.Module):
    """``num_layers`` GRU layers -> dropout -> ``num_layers`` LSTM layers -> linear head.

    Parameters
    ----------
    n_features : int
        Size of the last axis of the input windows.
    hidden_size : int
        Hidden units of every GRU and LSTM layer.
    num_layers : int
        Layers in each of the two stacks (so ``2 * num_layers`` recurrent layers in all).
    dropout : float
        Dropout between stacked layers and between the GRU and the LSTM stacks.
    """

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        inner_dropout = dropout if num_layers > 1 else 0.0
        self.gru = nn.GRU(n_features, hidden_size, num_layers=num_layers,
                          dropout=inner_dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers=num_layers,
                            dropout=inner_dropout, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        encoded, _ = self.gru(x)
        output, _ = self.lstm(self.dropout(encoded))
        return self.head(output[:, -1]).squeeze(-1)


class GRULSTMModel(TorchNetModel):
    """GRU-then-LSTM regressor of the forward return.

    Hyperparameters: ``hidden_size`` (32), ``num_layers`` (layers per stack, 1),
    ``dropout`` (0.1), plus :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["gru_lstm"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "num_layers": 1,
        "dropout": 0.1,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        check_positive("GRULSTMModel", params, "hidden_size", "num_layers")
        check_dropout("GRULSTMModel", params["dropout"])
        return GRULSTMNetwork(
            n_features=len(config.feature_names),
            hidden_size=params["hidden_size"],
            num_layers=params["num_layers"],
            dropout=params["dropout"],
        )
