"""Temporal Fusion Transformer for a one-step forecast from the window.

Lim, Arik, Loeff and Pfister (2021), "Temporal Fusion Transformers for Interpretable
Multi-horizon Time Series Forecasting", International Journal of Forecasting 37(4). The
parts kept, in the paper's order (section 4):

1. each input variable is embedded on its own (a linear map of the scalar);
2. a variable selection network weighs the variables at every time step (softmax of a
   gated residual network over all embeddings) and mixes their own GRN-processed
   embeddings (eq. 6-8);
3. an LSTM encoder over the window (the sequence-to-sequence layer), with a gated skip
   connection back to the selected inputs: ``LayerNorm(x + GLU(lstm(x)))`` (eq. 17);
4. the enrichment GRN (without a static context: there are no static covariates);
5. interpretable multi-head attention: per-head queries and keys, one value projection
   shared by the heads, heads averaged, then ``W_H`` (eq. 13-15), causally masked, with a
   gated skip (eq. 19);
6. the position-wise feed-forward GRN and a final gated skip over the whole attention
   block back to the LSTM layer's output (eq. 20-21);
7. a linear head on the last position (the paper's quantile outputs become one point
   forecast: the shared loop regresses with MSE).

Training, prediction and persistence come from :mod:`model_zoo.lightning`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from model_zoo.base import Capabilities, ModelConfig
from model_zoo.lightning import TorchNetModel
from model_zoo.registry import ARCHITECTURES


class GatedSkip(nn.Module):
    """Gate + add & norm: ``LayerNorm(skip + GLU(Dropout(x)))`` (eq. 5 and 17)."""

    def __init__(self, n_inputs: int, width: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.gate = nn.Linear(n_inputs, 2 * width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.norm(skip + F.glu(self.gate(self.dropout(x)), dim=-1))


class GatedResidualNetwork(nn.Module):
    """GRN (eq. 2-4): ``LayerNorm(skip(a) + GLU(W1 ELU(W2 a + b2) + b1))``.

    Parameters
    ----------
    n_inputs, width, n_outputs : int
        Input, hidden and output widths; a linear skip maps ``n_inputs`` to ``n_outputs``
        when they differ.
    dropout : float
        Dropout before the gate.
    """

    def __init__(self, n_inputs: int, width: int, n_outputs: int, dropout: float) -> None:
        super().__init__()
        self.skip = nn.Linear(n_inputs, n_outputs) if n_inputs != n_outputs else nn.Identity()
        self.hidden = nn.Linear(n_inputs, width)
        self.output = nn.Linear(width, width)
        self.gated_skip = GatedSkip(width, n_outputs, dropout)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.gated_skip(self.output(F.elu(self.hidden(a))), self.skip(a))


class VariableGRNs(nn.Module):
    """One ``GatedResidualNetwork(width, width, width, dropout)`` per variable, run batched.

    Computes what a list of per-variable :class:`GatedResidualNetwork` modules computes on
    each variable's embedding (eq. 7: ELU hidden layer, dropout, GLU gate, identity skip,
    LayerNorm with the variable's own affine), with the weights stacked over the variables
    so that one batched matmul replaces ``n_variables`` small ones. Linear weights are
    stored ``(n_variables, in, out)``, biases and LayerNorm affines ``(n_variables, out)``.
    Initialisation and dropout draw the same random numbers, in the same order, as the
    per-variable modules did, so a seed trains the same network.

    A state dict in the per-variable layout (``<j>.hidden.weight``, ... with
    :class:`torch.nn.Linear`'s ``(out, in)`` weights), which networks saved before this
    class existed hold, loads into the stacked parameters.
    """

    PARTS: ClassVar[dict[str, str]] = {"hidden": "hidden", "output": "output",
                                       "gate": "gated_skip.gate", "norm": "gated_skip.norm"}

    def __init__(self, n_variables: int, width: int, dropout: float) -> None:
        super().__init__()
        self.n_variables, self.width = n_variables, width
        self.dropout = nn.Dropout(dropout)
        per_variable = {
            f"{j}.{key}": value.detach()
            for j in range(n_variables)
            for key, value in GatedResidualNetwork(width, width, width, dropout)
            .state_dict().items()
        }
        for name, value in self.stack_per_variable(per_variable, "").items():
            self.register_parameter(name, nn.Parameter(value))

    def stack_per_variable(self, state: Mapping[str, torch.Tensor],
                           prefix: str) -> dict[str, torch.Tensor]:
        """Stacked parameters (``hidden_weight``, ...) from per-variable GRN entries
        ``{prefix}<j>.<part>.weight`` and ``.bias``; empty when any entry is missing."""
        stacked = {}
        for name, part in self.PARTS.items():
            for kind in ("weight", "bias"):
                keys = [f"{prefix}{j}.{part}.{kind}" for j in range(self.n_variables)]
                if any(key not in state for key in keys):
                    return {}
                linear_weight = kind == "weight" and name != "norm"
                stacked[f"{name}_{kind}"] = torch.stack(
                    [state[key].t() if linear_weight else state[key] for key in keys]
                ).contiguous()
        return stacked

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        """Convert per-variable entries to the stacked layout, then load as usual."""
        stacked = self.stack_per_variable(state_dict, prefix)
        if stacked:
            for key in [k for k in state_dict
                        if k.startswith(prefix) and k[len(prefix):].split(".")[0].isdigit()
                        and int(k[len(prefix):].split(".")[0]) < self.n_variables]:
                del state_dict[key]
            state_dict.update({prefix + name: value for name, value in stacked.items()})
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, embedded: torch.Tensor) -> torch.Tensor:
        """Map ``(..., n_variables, width)`` embeddings to the same shape."""
        lead = embedded.shape[:-2]
        a = embedded.reshape(-1, self.n_variables, self.width).transpose(0, 1)
        hidden = F.elu(torch.baddbmm(self.hidden_bias.unsqueeze(1), a, self.hidden_weight))
        output = torch.baddbmm(self.output_bias.unsqueeze(1), hidden, self.output_weight)
        if self.training and self.dropout.p > 0:  # one draw per variable, as before
            output = torch.stack([self.dropout(part) for part in output])
        gated = F.glu(torch.baddbmm(self.gate_bias.unsqueeze(1), output, self.gate_weight),
                      dim=-1)
        normed = F.layer_norm(a + gated, (self.width,))
        out = torch.addcmul(self.norm_bias.unsqueeze(1), normed, self.norm_weight.unsqueeze(1))
        return out.transpose(0, 1).reshape(*lead, self.n_variables, self.width)


class VariableSelection(nn.Module):
    """Variable selection network (eq. 6-8) over ``n_variables`` scalar inputs.

    Each scalar is embedded to ``width``; a GRN over the concatenated embeddings gives the
    softmax selection weights; each embedding goes through its own GRN (batched in
    :class:`VariableGRNs`); the output is the weighted sum. Returns ``(output, weights)``.
    """

    def __init__(self, n_variables: int, width: int, dropout: float) -> None:
        super().__init__()
        self.embed_weight = nn.Parameter(torch.randn(n_variables, width) * 0.1)
        self.embed_bias = nn.Parameter(torch.zeros(n_variables, width))
        self.selector = GatedResidualNetwork(n_variables * width, width, n_variables, dropout)
        self.processors = VariableGRNs(n_variables, width, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``(batch, time, n_variables)`` to ``(batch, time, width)`` and the weights
        ``(batch, time, n_variables)``."""
        embedded = x.unsqueeze(-1) * self.embed_weight + self.embed_bias
        weights = torch.softmax(self.selector(embedded.flatten(-2)), dim=-1)
        processed = self.processors(embedded)
        return (weights.unsqueeze(-1) * processed).sum(dim=-2), weights


class InterpretableMultiHeadAttention(nn.Module):
    """Interpretable multi-head attention (eq. 13-15).

    Heads have their own query and key projections of width ``width // n_heads`` but share
    one value projection, and their outputs are averaged (not concatenated) before
    ``W_H``, so the averaged attention weights describe the whole layer.
    """

    def __init__(self, width: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_width = width // n_heads
        self.queries = nn.Linear(width, n_heads * self.head_width)
        self.keys = nn.Linear(width, n_heads * self.head_width)
        self.value = nn.Linear(width, self.head_width)
        self.output = nn.Linear(self.head_width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Causal self-attention over ``(batch, time, width)``."""
        batch, steps, _ = x.shape
        q = self.queries(x).view(batch, steps, self.n_heads, self.head_width).transpose(1, 2)
        k = self.keys(x).view(batch, steps, self.n_heads, self.head_width).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / self.head_width**0.5
        future = torch.ones(steps, steps, dtype=torch.bool, device=x.device).triu(1)
        attention = self.dropout(torch.softmax(scores.masked_fill(future, -torch.inf), dim=-1))
        heads = attention @ self.value(x).unsqueeze(1)
        return self.output(heads.mean(dim=1))


class TFTNetwork(nn.Module):
    """The Temporal Fusion Transformer without static covariates, one-step head.

    Parameters
    ----------
    n_features : int
        Observed input variables (the window's last axis).
    hidden_size : int
        Model width ``d_model``.
    n_heads : int
        Attention heads (each of width ``hidden_size // n_heads``).
    num_layers : int
        LSTM encoder layers.
    dropout : float
        Dropout in the GRNs, gates and attention.
    """

    def __init__(self, n_features: int, hidden_size: int, n_heads: int, num_layers: int,
                 dropout: float) -> None:
        super().__init__()
        self.selection = VariableSelection(n_features, hidden_size, dropout)
        self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.lstm_skip = GatedSkip(hidden_size, hidden_size, dropout)
        self.enrichment = GatedResidualNetwork(hidden_size, hidden_size, hidden_size, dropout)
        self.attention = InterpretableMultiHeadAttention(hidden_size, n_heads, dropout)
        self.attention_skip = GatedSkip(hidden_size, hidden_size, dropout)
        self.feed_forward = GatedResidualNetwork(hidden_size, hidden_size, hidden_size, dropout)
        self.output_skip = GatedSkip(hidden_size, hidden_size, 0.0)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        selected, _ = self.selection(x)
        encoded, _ = self.lstm(selected)
        temporal = self.lstm_skip(encoded, selected)
        enriched = self.enrichment(temporal)
        attended = self.attention_skip(self.attention(enriched), enriched)
        fused = self.output_skip(self.feed_forward(attended), temporal)
        return self.head(fused[:, -1]).squeeze(-1)


class TFTModel(TorchNetModel):
    """Temporal Fusion Transformer regressor of the forward return.

    Hyperparameters: ``hidden_size`` (``d_model``, 32), ``n_heads`` (4, must divide
    ``hidden_size``), ``num_layers`` (LSTM layers, 1), ``dropout`` (0.1), plus
    :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["tft"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "n_heads": 4,
        "num_layers": 1,
        "dropout": 0.1,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        hidden_size, n_heads = params["hidden_size"], params["n_heads"]
        if n_heads < 1 or hidden_size < 1 or hidden_size % n_heads or params["num_layers"] < 1:
            raise ValueError(f"TFTModel: hidden_size ({hidden_size}) must be a positive "
                             f"multiple of n_heads ({n_heads}) and num_layers at least 1")
        return TFTNetwork(
            n_features=len(config.feature_names),
            hidden_size=hidden_size,
            n_heads=n_heads,
            num_layers=params["num_layers"],
            dropout=params["dropout"],
        )
