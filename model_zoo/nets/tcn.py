"""Temporal convolutional network: dilated causal 1-D convolutions in residual blocks.

Bai, Kolter and Koltun (2018), "An Empirical Evaluation of Generic Convolutional and
Recurrent Networks for Sequence Modeling", arXiv:1803.01271, section 3. Each residual block
holds two causal convolutions of the same dilation (weight-normalised, ReLU, dropout) and a
skip connection (a 1x1 convolution where the width changes); block ``i`` has dilation
``2**i``, so ``n_levels`` blocks of kernel ``k`` see ``1 + 2 (k - 1) (2**n_levels - 1)``
bars. Causal: the output at bar ``t`` depends on bars ``<= t`` only (left padding), and a
linear head reads the decision bar's (last) output.

Training, prediction and persistence come from :mod:`model_zoo.lightning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from model_zoo.base import Capabilities, ModelConfig
from model_zoo.lightning import TorchNetModel
from model_zoo.nets.blocks import check_dropout, check_positive
from model_zoo.registry import ARCHITECTURES


class CausalConv1d(nn.Module):
    """Weight-normalised ``Conv1d`` on ``(batch, channels, time)``, left-padded so that
    output ``t`` sees inputs ``t - dilation (kernel_size - 1) .. t`` only."""

    def __init__(self, n_inputs: int, n_outputs: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.left_padding = (kernel_size - 1) * dilation
        self.conv = weight_norm(nn.Conv1d(n_inputs, n_outputs, kernel_size, dilation=dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.left_padding, 0)))


class TemporalBlock(nn.Module):
    """``ReLU(x_skip + Dropout(ReLU(conv2(Dropout(ReLU(conv1(x)))))))`` (the paper's
    figure 1b)."""

    def __init__(self, n_inputs: int, n_outputs: int, kernel_size: int, dilation: int,
                 dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            CausalConv1d(n_inputs, n_outputs, kernel_size, dilation), nn.ReLU(),
            nn.Dropout(dropout),
            CausalConv1d(n_outputs, n_outputs, kernel_size, dilation), nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.skip = (nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs
                     else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.layers(x) + self.skip(x))


class TCNNetwork(nn.Module):
    """``n_levels`` temporal blocks of dilation 1, 2, 4, ... -> ``Linear`` on the last bar.

    Parameters
    ----------
    n_features : int
        Size of the last axis of the input windows.
    hidden_size : int
        Channels of every block.
    n_levels : int
        Residual blocks.
    kernel_size : int
        Convolution kernel length (bars).
    dropout : float
        Dropout after each convolution.
    """

    def __init__(self, n_features: int, hidden_size: int, n_levels: int, kernel_size: int,
                 dropout: float) -> None:
        super().__init__()
        widths = [n_features] + [hidden_size] * n_levels
        self.blocks = nn.Sequential(*(
            TemporalBlock(widths[level], widths[level + 1], kernel_size, 2**level, dropout)
            for level in range(n_levels)
        ))
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        features = self.blocks(x.transpose(1, 2))
        return self.head(features[:, :, -1]).squeeze(-1)


class TCNModel(TorchNetModel):
    """Temporal convolutional network regressor of the forward return.

    Hyperparameters: ``hidden_size`` (channels, 32), ``n_levels`` (residual blocks, 3:
    a receptive field of 29 bars with ``kernel_size`` 3), ``kernel_size`` (3),
    ``dropout`` (0.1), plus :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["tcn"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "n_levels": 3,
        "kernel_size": 3,
        "dropout": 0.1,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        check_positive("TCNModel", params, "hidden_size", "n_levels", "kernel_size")
        check_dropout("TCNModel", params["dropout"])
        return TCNNetwork(len(config.feature_names), params["hidden_size"], params["n_levels"],
                          params["kernel_size"], params["dropout"])
