"""Parallel 1-D convolutions of several widths, global max pooling, MLP head.

A multi-width convolutional text classifier (Kim 2014, "Convolutional Neural Networks for
Sentence Classification", EMNLP) applied to bars: one branch per kernel size (3, 5 and 7
bars by default) detects local return patterns of that length anywhere in the window,
global max pooling over time keeps each filter's strongest response, and an MLP head maps
the concatenated responses to the forecast. Convolutions are causal (left padding).

Global max pooling forgets *when* a pattern occurred, and for a forecast the bars nearest
the decision matter most: fitted on an AR(1) series, a pure max-pool net reached a
correlation of 0.06-0.09 with the label where every recurrent net reached 0.2. So the head
also reads each filter's response at the decision bar (the last), beside its maximum.

Training, prediction and persistence come from :mod:`model_zoo.lightning`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from model_zoo.base import Capabilities, ModelConfig
from model_zoo.lightning import TorchNetModel
from model_zoo.nets.blocks import MLPHead, check_dropout, check_positive
from model_zoo.registry import ARCHITECTURES


class CNN1DNetwork(nn.Module):
    """One causal ``Conv1d -> ReLU`` branch per kernel size; each filter's maximum over
    time and its response at the last bar, concatenated, feed an ``MLPHead``.

    Parameters
    ----------
    n_features : int
        Size of the last axis of the input windows.
    hidden_size : int
        Filters per branch (and the head's width).
    kernel_sizes : sequence of int
        Kernel length of each branch, in bars.
    dropout : float
        Dropout on the pooled responses and in the head.
    """

    def __init__(self, n_features: int, hidden_size: int, kernel_sizes: Sequence[int],
                 dropout: float) -> None:
        super().__init__()
        self.kernel_sizes = tuple(kernel_sizes)
        self.branches = nn.ModuleList(nn.Conv1d(n_features, hidden_size, kernel_size)
                                      for kernel_size in self.kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.head = MLPHead(2 * hidden_size * len(self.kernel_sizes), hidden_size, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        channels = x.transpose(1, 2)
        pooled = []
        for conv, kernel_size in zip(self.branches, self.kernel_sizes, strict=True):
            responses = F.relu(conv(F.pad(channels, (kernel_size - 1, 0))))
            pooled += [responses.amax(dim=-1), responses[:, :, -1]]
        return self.head(self.dropout(torch.cat(pooled, dim=-1)))


class CNN1DModel(TorchNetModel):
    """Multi-width 1-D CNN regressor of the forward return.

    Hyperparameters: ``hidden_size`` (filters per branch, 32), ``kernel_sizes``
    (``[3, 5, 7]``: the grid may give any three positive widths), ``dropout`` (0.1), plus
    :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["cnn1d"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "kernel_sizes": [3, 5, 7],
        "dropout": 0.1,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        return build_cnn1d(len(config.feature_names), params, "CNN1DModel")


def build_cnn1d(n_features: int, params: Mapping[str, Any], owner: str) -> CNN1DNetwork:
    """Check ``params`` (``hidden_size``, ``kernel_sizes``, ``dropout``) and build the
    network; ``owner`` names the model in error messages."""
    check_positive(owner, params, "hidden_size")
    if any(kernel_size < 1 for kernel_size in params["kernel_sizes"]):
        raise ValueError(f"{owner}: kernel_sizes must be positive; got {params['kernel_sizes']}")
    check_dropout(owner, params["dropout"])
    return CNN1DNetwork(n_features, params["hidden_size"], params["kernel_sizes"],
                        params["dropout"])
