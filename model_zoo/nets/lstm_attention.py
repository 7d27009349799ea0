"""LSTM, then multi-head self-attention over its outputs, then an MLP head.

The LSTM (Hochreiter and Schmidhuber 1997) encodes the window bar by bar; scaled dot-product
multi-head attention (Vaswani et al. 2017, "Attention Is All You Need") lets the decision
bar look back at every LSTM output, not only through the recurrent state; a residual
connection and layer norm keep the LSTM's own summary; an MLP head maps the decision bar's
attended state to the forecast.

Only the decision bar's row of the self-attention is computed (its query against every
bar's key): it is the only row the head reads, and it equals that row of the full
``lookback x lookback`` self-attention.

Training, prediction and persistence come from :mod:`model_zoo.lightning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from model_zoo.base import Capabilities, ModelConfig
from model_zoo.lightning import TorchNetModel
from model_zoo.nets.blocks import MLPHead, check_dropout, check_heads, check_positive
from model_zoo.registry import ARCHITECTURES


class LSTMAttentionNetwork(nn.Module):
    """``LSTM -> LayerNorm(h_last + MultiHeadAttention(h_last, h, h)) -> MLPHead``.

    Parameters
    ----------
    n_features : int
        Size of the last axis of the input windows.
    hidden_size : int
        LSTM units, attention width and head width.
    num_layers : int
        Stacked LSTM layers.
    n_heads : int
        Attention heads (each of width ``hidden_size // n_heads``).
    dropout : float
        Dropout between LSTM layers (only with several), on the attention weights and in
        the head.
    """

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, n_heads: int,
                 dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden_size, num_layers=num_layers,
                            dropout=dropout if num_layers > 1 else 0.0, batch_first=True)
        self.attention = nn.MultiheadAttention(hidden_size, n_heads, dropout=dropout,
                                               batch_first=True)
        self.norm = nn.LayerNorm(hidden_size)
        self.head = MLPHead(hidden_size, hidden_size, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        states, _ = self.lstm(x)
        last = states[:, -1:]
        attended, _ = self.attention(last, states, states, need_weights=False)
        return self.head(self.norm(last + attended)[:, 0])


class LSTMAttentionModel(TorchNetModel):
    """LSTM + multi-head self-attention regressor of the forward return.

    Hyperparameters: ``hidden_size`` (32), ``num_layers`` (LSTM layers, 1), ``n_heads``
    (4, must divide ``hidden_size``), ``dropout`` (0.1), plus
    :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["lstm_attention"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "num_layers": 1,
        "n_heads": 4,
        "dropout": 0.1,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        return build_lstm_attention(len(config.feature_names), params, "LSTMAttentionModel")


def build_lstm_attention(n_features: int, params: Mapping[str, Any],
                         owner: str) -> LSTMAttentionNetwork:
    """Check ``params`` (``hidden_size``, ``num_layers``, ``n_heads``, ``dropout``) and
    build the network; ``owner`` names the model in error messages."""
    check_positive(owner, params, "hidden_size", "num_layers")
    check_heads(owner, params["hidden_size"], params["n_heads"])
    check_dropout(owner, params["dropout"])
    return LSTMAttentionNetwork(n_features, params["hidden_size"], params["num_layers"],
                                params["n_heads"], params["dropout"])
