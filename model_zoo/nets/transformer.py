"""Transformer encoder over the window (Vaswani et al. 2017, "Attention Is All You Need").

Each bar's features are embedded by one linear map to ``d_model = hidden_size``, a fixed
sinusoidal positional encoding says where in the window the bar is, a stack of pre-norm
encoder layers (multi-head self-attention and a feed-forward block) mixes the bars, and an
MLP head maps the decision bar's state (``pooling="last"``) or the mean over the bars
(``pooling="mean"``) to the forecast. Self-attention is not masked: every bar of the window
is known at the decision bar, which is its last.

Training, prediction and persistence come from :mod:`model_zoo.lightning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from model_zoo.base import Capabilities, ModelConfig
from model_zoo.lightning import TorchNetModel
from model_zoo.nets.blocks import (
    MLPHead,
    SinusoidalPositionalEncoding,
    check_dropout,
    check_heads,
    check_positive,
    encoder_stack,
)
from model_zoo.registry import ARCHITECTURES

POOLINGS = ("last", "mean")


class TransformerNetwork(nn.Module):
    """``Linear -> + positional encoding -> TransformerEncoder -> pool -> MLPHead``.

    Parameters
    ----------
    n_inputs : int
        Channels per bar that :meth:`embed` maps to ``hidden_size``.
    hidden_size : int
        Model width ``d_model``.
    num_layers : int
        Encoder layers.
    n_heads : int
        Attention heads (each of width ``hidden_size // n_heads``).
    feedforward_ratio : int
        Width of each layer's feed-forward block, in multiples of ``hidden_size``.
    dropout : float
        Dropout in the encoder layers and the head.
    pooling : str
        ``"last"`` (the decision bar's state) or ``"mean"`` (average over the bars).
    """

    def __init__(self, n_inputs: int, hidden_size: int, num_layers: int, n_heads: int,
                 feedforward_ratio: int, dropout: float, pooling: str) -> None:
        super().__init__()
        self.pooling = pooling
        self.embedding = nn.Linear(n_inputs, hidden_size)
        self.positions = SinusoidalPositionalEncoding(hidden_size)
        self.encoder = encoder_stack(hidden_size, n_heads, num_layers,
                                     feedforward_ratio * hidden_size, dropout)
        self.head = MLPHead(hidden_size, hidden_size, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, lookback, n_features)`` -> ``(batch, lookback, hidden_size)`` with the
        position of each bar encoded."""
        return self.positions(self.embedding(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        encoded = self.encoder(self.embed(x))
        pooled = encoded[:, -1] if self.pooling == "last" else encoded.mean(dim=1)
        return self.head(pooled)


class TransformerModel(TorchNetModel):
    """Transformer-encoder regressor of the forward return.

    Hyperparameters: ``hidden_size`` (``d_model``, 32), ``num_layers`` (encoder layers, 2),
    ``n_heads`` (4, must divide ``hidden_size``), ``feedforward_ratio`` (feed-forward width
    over ``hidden_size``, 2), ``dropout`` (0.1), ``pooling`` (``"last"`` or ``"mean"``), plus
    :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["transformer"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "num_layers": 2,
        "n_heads": 4,
        "feedforward_ratio": 2,
        "dropout": 0.1,
        "pooling": "last",
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        check_encoder_params("TransformerModel", params)
        return TransformerNetwork(len(config.feature_names), **encoder_kwargs(params))


def check_encoder_params(owner: str, params: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` on encoder hyperparameters a network cannot be built from."""
    check_positive(owner, params, "hidden_size", "num_layers", "feedforward_ratio")
    check_heads(owner, params["hidden_size"], params["n_heads"])
    check_dropout(owner, params["dropout"])
    if params["pooling"] not in POOLINGS:
        raise ValueError(f"{owner}: pooling must be one of {POOLINGS}; got {params['pooling']!r}")


def encoder_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`TransformerNetwork` arguments among ``params``."""
    names = ("hidden_size", "num_layers", "n_heads", "feedforward_ratio", "dropout", "pooling")
    return {name: params[name] for name in names}
