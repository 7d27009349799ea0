"""Transformer encoder with a learned Time2Vec time encoding instead of fixed positions.

Kazemi et al. (2019), "Time2Vec: Learning a Vector Representation of Time",
arXiv:1907.05321: the time index ``tau`` is encoded as one linear component and ``k``
periodic ones, ``[w_0 tau + b_0, sin(w_1 tau + b_1), ..., sin(w_k tau + b_k)]`` with every
``w`` and ``b`` learned, so the net can find the cycles (weekly, monthly) the data has
rather than the fixed frequencies of a sinusoidal encoding. Here ``tau`` is the bar's
position in the window, in bars; the encoding is concatenated to each bar's features
before the linear embedding, and the rest is :mod:`model_zoo.nets.transformer`'s encoder
and head.

Training, prediction and persistence come from :mod:`model_zoo.lightning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from model_zoo.base import Capabilities, ModelConfig
from model_zoo.lightning import TorchNetModel
from model_zoo.nets.blocks import Time2Vec, check_positive
from model_zoo.nets.transformer import TransformerNetwork, check_encoder_params, encoder_kwargs
from model_zoo.registry import ARCHITECTURES


class Time2VecTransformerNetwork(TransformerNetwork):
    """``Linear([features, Time2Vec(tau)]) -> TransformerEncoder -> pool -> MLPHead``.

    Parameters
    ----------
    n_features : int
        Size of the last axis of the input windows.
    time2vec_dim : int
        Periodic Time2Vec components ``k`` (the encoding adds ``k + 1`` channels per bar).
    lookback : int
        Window length (sets the linear component's starting slope).
    **encoder : Any
        :class:`~model_zoo.nets.transformer.TransformerNetwork`'s other arguments.
    """

    def __init__(self, n_features: int, time2vec_dim: int, lookback: int, **encoder: Any):
        super().__init__(n_features + time2vec_dim + 1, **encoder)
        del self.positions
        self.time2vec = Time2Vec(time2vec_dim, lookback)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the Time2Vec encoding to every bar, then embed linearly."""
        batch, steps, _ = x.shape
        times = self.time2vec(steps, x.device, x.dtype).expand(batch, steps, -1)
        return self.embedding(torch.cat([x, times], dim=-1))


class Time2VecTransformerModel(TorchNetModel):
    """Time2Vec transformer regressor of the forward return.

    Hyperparameters: ``time2vec_dim`` (periodic components ``k``, 8) and the
    :class:`~model_zoo.nets.transformer.TransformerModel` ones: ``hidden_size`` (32),
    ``num_layers`` (2), ``n_heads`` (4), ``feedforward_ratio`` (2), ``dropout`` (0.1),
    ``pooling`` (``"last"``), plus :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["time2vec_transformer"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "num_layers": 2,
        "n_heads": 4,
        "feedforward_ratio": 2,
        "dropout": 0.1,
        "pooling": "last",
        "time2vec_dim": 8,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        check_encoder_params("Time2VecTransformerModel", params)
        check_positive("Time2VecTransformerModel", params, "time2vec_dim")
        return Time2VecTransformerNetwork(len(config.feature_names), params["time2vec_dim"],
                                          config.lookback, **encoder_kwargs(params))
