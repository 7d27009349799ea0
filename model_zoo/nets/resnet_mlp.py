"""Residual MLP on the flattened window (the "ResNet" baseline for tabular data).

Gorishniy, Rubachev, Khrulkov and Babenko (2021), "Revisiting Deep Learning Models for
Tabular Data", NeurIPS: a linear stem, ``num_layers`` residual blocks
``x + Dropout(Linear(Dropout(ReLU(Linear(Norm(x))))))`` and a ``Norm -> ReLU -> Linear``
head. LayerNorm stands in for the paper's BatchNorm, so a prediction never depends on the
other rows of its batch and a one-row training batch cannot fail.

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


class ResidualBlock(nn.Module):
    """``x + Dropout(Linear(Dropout(ReLU(Linear(LayerNorm(x))))))``.

    Parameters
    ----------
    width : int
        Width of the residual stream.
    inner : int
        Width of the block's hidden layer.
    dropout : float
        Dropout after the hidden layer and after the block.
    """

    def __init__(self, width: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, inner), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(inner, width), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, width)`` to ``(batch, width)``."""
        return x + self.body(x)


class ResNetMLPNetwork(nn.Module):
    """Flatten -> ``Linear(lookback * n_features, hidden_size)`` -> residual blocks -> head.

    Parameters
    ----------
    n_inputs : int
        ``lookback * n_features``, the flattened window's length.
    hidden_size : int
        Width of the residual stream.
    num_layers : int
        Residual blocks.
    expansion : float
        Hidden width of a block as a multiple of ``hidden_size``.
    dropout : float
        Dropout inside the blocks.
    """

    def __init__(self, n_inputs: int, hidden_size: int, num_layers: int, expansion: float,
                 dropout: float) -> None:
        super().__init__()
        inner = max(1, round(hidden_size * expansion))
        self.stem = nn.Linear(n_inputs, hidden_size)
        self.blocks = nn.Sequential(
            *(ResidualBlock(hidden_size, inner, dropout) for _ in range(num_layers))
        )
        self.head = nn.Sequential(nn.LayerNorm(hidden_size), nn.ReLU(), nn.Linear(hidden_size, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        return self.head(self.blocks(self.stem(x.flatten(1)))).squeeze(-1)


class ResNetMLPModel(TorchNetModel):
    """Residual MLP regressor of the forward return.

    Hyperparameters: ``hidden_size`` (64), ``num_layers`` (residual blocks, 2),
    ``expansion`` (block width / ``hidden_size``, 2.0), ``dropout`` (0.1), plus
    :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["resnet_mlp"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 64,
        "num_layers": 2,
        "expansion": 2.0,
        "dropout": 0.1,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        if params["hidden_size"] < 1 or params["num_layers"] < 0 or params["expansion"] <= 0:
            raise ValueError(f"ResNetMLPModel: invalid network hyperparameters {dict(params)}")
        return ResNetMLPNetwork(
            n_inputs=config.lookback * len(config.feature_names),
            hidden_size=params["hidden_size"],
            num_layers=params["num_layers"],
            expansion=params["expansion"],
            dropout=params["dropout"],
        )
