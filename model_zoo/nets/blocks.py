"""Pieces several sequence nets share: position encodings, the MLP head, checks.

Only ``nn.Module`` building blocks live here (rule 3: training is the shared loop's job).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sine/cosine position encoding added to a ``(batch, time, d_model)`` input.

    Vaswani et al. (2017), "Attention Is All You Need", section 3.5:
    ``PE[pos, 2i] = sin(pos / 10000^(2i/d))`` and ``PE[pos, 2i+1] = cos(...)``. Computed
    for the input's length on each call (nothing stored, so the weights file does not
    depend on the lookback). Position 0 is the window's first bar.

    Parameters
    ----------
    d_model : int
        Width of the input it is added to.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[1]
        position = torch.arange(steps, dtype=x.dtype, device=x.device).unsqueeze(1)
        rate = torch.exp(torch.arange(0, self.d_model, 2, dtype=x.dtype, device=x.device)
                         * (-math.log(10000.0) / self.d_model))
        encoding = torch.zeros(steps, self.d_model, dtype=x.dtype, device=x.device)
        encoding[:, 0::2] = torch.sin(position * rate)
        encoding[:, 1::2] = torch.cos(position * rate)[:, : self.d_model // 2]
        return x + encoding


class Time2Vec(nn.Module):
    """Time2Vec encoding of the time index (Kazemi et al. 2019, "Time2Vec: Learning a Vector
    Representation of Time", arXiv:1907.05321, eq. 1).

    ``t2v(tau)[0] = w_0 tau + b_0`` (the non-periodic, linear part) and
    ``t2v(tau)[i] = sin(w_i tau + b_i)`` for ``i = 1..k``, every ``w`` and ``b`` learned.
    ``tau`` is the bar's position in the window counted in bars (``0 .. lookback - 1``), so
    a frequency ``w_i`` is in radians per bar (a weekly cycle of daily bars is about
    ``2 pi / 5``). Frequencies start uniform on ``[0, pi]`` (periods of two bars or more);
    the linear slope starts at ``1 / lookback`` so the linear part stays of order one.

    Parameters
    ----------
    n_periodic : int
        ``k``, the periodic components; the output has ``k + 1`` channels.
    lookback : int
        Window length, for the linear part's starting slope.
    """

    def __init__(self, n_periodic: int, lookback: int) -> None:
        super().__init__()
        self.linear_weight = nn.Parameter(torch.tensor(1.0 / max(lookback, 1)))
        self.linear_bias = nn.Parameter(torch.zeros(()))
        self.periodic_weight = nn.Parameter(torch.rand(n_periodic) * math.pi)
        self.periodic_bias = nn.Parameter(torch.rand(n_periodic) * 2 * math.pi)

    def forward(self, steps: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The ``(steps, k + 1)`` encoding of positions ``0 .. steps - 1``."""
        tau = torch.arange(steps, dtype=dtype, device=device).unsqueeze(1)
        linear = self.linear_weight * tau + self.linear_bias
        periodic = torch.sin(self.periodic_weight * tau + self.periodic_bias)
        return torch.cat([linear, periodic], dim=1)


class MLPHead(nn.Module):
    """``Linear(n_inputs, width) -> GELU -> Dropout -> Linear(width, 1)``, squeezed to
    ``(batch,)``."""

    def __init__(self, n_inputs: int, width: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_inputs, width), nn.GELU(), nn.Dropout(dropout),
                                    nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)


def encoder_stack(d_model: int, n_heads: int, num_layers: int, feedforward_size: int,
                  dropout: float) -> nn.TransformerEncoder:
    """A pre-norm ``nn.TransformerEncoder`` (batch first, GELU) of ``num_layers`` layers.

    Pre-norm (layer norm before attention and feed-forward) trains steadily without a
    learning-rate warm-up, which the shared loop does not have.
    """
    layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=feedforward_size,
                                       dropout=dropout, activation="gelu", batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(d_model),
                                 enable_nested_tensor=False)


def check_positive(owner: str, params: Mapping[str, Any], *names: str) -> None:
    """Raise ``ValueError`` naming each of ``names`` in ``params`` that is below 1."""
    bad = {name: params[name] for name in names if params[name] < 1}
    if bad:
        raise ValueError(f"{owner}: hyperparameters {bad} must be at least 1")


def check_dropout(owner: str, dropout: float) -> None:
    """Raise ``ValueError`` unless ``0 <= dropout < 1``."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{owner}: dropout must be in [0, 1); got {dropout}")


def check_heads(owner: str, hidden_size: int, n_heads: int) -> None:
    """Raise ``ValueError`` unless ``n_heads`` is positive and divides ``hidden_size``."""
    if n_heads < 1 or hidden_size < 1 or hidden_size % n_heads:
        raise ValueError(f"{owner}: hidden_size ({hidden_size}) must be a positive multiple "
                         f"of n_heads ({n_heads})")
