"""Transformer, LSTM-attention and 1-D CNN branches aggregated by a learned linear layer.

Three networks with different inductive biases read the same window: the transformer
encoder of :mod:`model_zoo.nets.transformer` (attention over all bars with positions),
the LSTM with self-attention of :mod:`model_zoo.nets.lstm_attention` (recurrent memory)
and the multi-width CNN of :mod:`model_zoo.nets.cnn1d` (local patterns). Each maps the
window to a forecast; ``Linear(3, 1)``, started as the plain average, combines them. All of
it is trained end to end by the shared loop on the combined forecast's loss (a stacked
ensemble learned jointly, not three separately fitted models).

Training, prediction and persistence come from :mod:`model_zoo.lightning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from model_zoo.base import Capabilities, ModelConfig
from model_zoo.lightning import TorchNetModel
from model_zoo.nets.cnn1d import build_cnn1d
from model_zoo.nets.lstm_attention import build_lstm_attention
from model_zoo.nets.transformer import TransformerNetwork, check_encoder_params, encoder_kwargs
from model_zoo.registry import ARCHITECTURES


class EnsembleNetwork(nn.Module):
    """``Linear(3, 1)`` over the forecasts of a transformer, an LSTM-attention net and a CNN.

    Parameters
    ----------
    branches : list of nn.Module
        Networks mapping ``(batch, lookback, n_features)`` to ``(batch,)``.
    """

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)
        self.aggregate = nn.Linear(len(branches), 1)
        nn.init.constant_(self.aggregate.weight, 1.0 / len(branches))
        nn.init.zeros_(self.aggregate.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        forecasts = torch.stack([branch(x) for branch in self.branches], dim=-1)
        return self.aggregate(forecasts).squeeze(-1)


class EnsembleModel(TorchNetModel):
    """End-to-end ensemble of a transformer, an LSTM-attention net and a 1-D CNN.

    Hyperparameters, shared by the branches: ``hidden_size`` (each branch's width, 16),
    ``num_layers`` (the transformer's encoder layers and the LSTM's layers, 1), ``n_heads``
    (heads of both attention branches, 4, must divide ``hidden_size``),
    ``feedforward_ratio`` (the transformer's, 2), ``kernel_sizes`` (the CNN's,
    ``[3, 5, 7]``), ``dropout`` (0.1), plus :class:`~model_zoo.lightning.TrainingHParams`.
    The transformer branch reads the decision bar's state (``pooling="last"``). Each branch
    is smaller than its standalone default, so that the three together stay cheap.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["ensemble"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 16,
        "num_layers": 1,
        "n_heads": 4,
        "feedforward_ratio": 2,
        "kernel_sizes": [3, 5, 7],
        "dropout": 0.1,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        owner = "EnsembleModel"
        n_features = len(config.feature_names)
        encoder_params = {**params, "pooling": "last"}
        check_encoder_params(owner, encoder_params)
        return EnsembleNetwork([
            TransformerNetwork(n_features, **encoder_kwargs(encoder_params)),
            build_lstm_attention(n_features, params, owner),
            build_cnn1d(n_features, params, owner),
        ])
