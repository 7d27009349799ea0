"""Temporal Fusion Transformer for a one-step forecast from the window.

Lim, Arik, Loeff and Pfister (2021), "Temporal Fusion Transformers for Interpretable
Multi-horizon Time Series Forecasting", International Journal of Forecasting 37(4). The
parts kept, in the paper's order (section 4):

1. each input variable is embedded on its own (a linear map of the scalar);
2. a variable selection network weighs the variables at every time step (softmax of a
   gated residual network over all embeddings) and mixes their own GRN-processed
   embeddings (eq. 6-8); the per-variable GRNs run as one batch with stacked weights;
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
    stored ``(n_variables, in, out)``, biases and LayerNorm affines ``(n_variables, out)``;
    inputs and outputs are variable first, ``(n_variables, rows, width)``. Initialisation
    and (on the CPU) dropout draw the same random numbers, in the same order, as the
    per-variable modules did, so a seed trains the same network up to float rounding.

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

    def per_variable_keys(self, prefix: str) -> dict[str, list[str]]:
        """Each stacked parameter's per-variable state-dict keys, variable by variable."""
        return {f"{name}_{kind}": [f"{prefix}{j}.{part}.{kind}" for j in range(self.n_variables)]
                for name, part in self.PARTS.items() for kind in ("weight", "bias")}

    def stack_per_variable(self, state: Mapping[str, torch.Tensor],
                           prefix: str) -> dict[str, torch.Tensor]:
        """The stacked parameters from per-variable GRN entries ``{prefix}<j>.<part>.weight``
        and ``.bias`` (Linear weights transposed); empty when any entry is missing."""
        keys = self.per_variable_keys(prefix)
        if any(key not in state for group in keys.values() for key in group):
            return {}
        linear_weights = {"hidden_weight", "output_weight", "gate_weight"}
        return {name: torch.stack([state[key].t() if name in linear_weights else state[key]
                                   for key in group]).contiguous()
                for name, group in keys.items()}

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any, **kwargs: Any) -> None:
        """Convert per-variable entries to the stacked layout, then load as usual."""
        stacked = self.stack_per_variable(state_dict, prefix)
        if stacked:
            for group in self.per_variable_keys(prefix).values():
                for key in group:
                    del state_dict[key]
            state_dict.update({prefix + name: value for name, value in stacked.items()})
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def draw_dropout(self, rows: int, device: torch.device) -> torch.Tensor | None:
        """The dropout noise ``(n_variables, rows, width)``, 0 or ``1 / (1 - p)`` (None when
        dropout is off), drawn variable by variable as the per-variable modules drew it."""
        if not self.training or self.dropout.p == 0:
            return None
        keep = torch.empty(self.n_variables, rows, self.width, device=device,
                           dtype=self.hidden_weight.dtype)
        for variable in keep:
            variable.bernoulli_(1 - self.dropout.p).div_(1 - self.dropout.p)
        return keep

    def forward(self, embedded: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Map ``(n_variables, rows, width)`` embeddings, variable first, to the same shape.

        ``keep`` is the rows' slice of a :meth:`draw_dropout` mask; drawn here when None.
        """
        if keep is None:
            keep = self.draw_dropout(embedded.shape[1], embedded.device)
        hidden = F.elu(torch.bmm(embedded, self.hidden_weight).add_(self.hidden_bias[:, None]))
        output = torch.bmm(hidden, self.output_weight).add_(self.output_bias[:, None])
        if keep is not None:
            output = output * keep
        gated = F.glu(torch.bmm(output, self.gate_weight).add_(self.gate_bias[:, None]), dim=-1)
        normed = F.layer_norm(embedded + gated, (self.width,))
        return torch.addcmul(self.norm_bias.unsqueeze(1), normed, self.norm_weight.unsqueeze(1))


class VariableSelection(nn.Module):
    """Variable selection network (eq. 6-8) over ``n_variables`` scalar inputs.

    Each scalar is embedded to ``width``; a GRN over the concatenated embeddings gives the
    softmax selection weights; each embedding goes through its own GRN (batched in
    :class:`VariableGRNs`); the output is the weighted sum. Returns ``(output, weights)``.

    Two rearrangements keep this fast on a CPU without changing what it computes: the
    embedding is affine in the scalar, so the selector's input layers are folded into
    ``(n_variables, out)`` matrices instead of reading the ``n_variables * width`` wide
    concatenation; and the per-variable GRNs run over ``ROWS_PER_PASS`` rows (batch x
    time) at a time, so that their intermediates stay small enough for the cache and the
    allocator to reuse (whole-batch ones, tens of MB each, are paged in afresh every time).
    """

    ROWS_PER_PASS: ClassVar[int] = 1024

    def __init__(self, n_variables: int, width: int, dropout: float) -> None:
        super().__init__()
        self.embed_weight = nn.Parameter(torch.randn(n_variables, width) * 0.1)
        self.embed_bias = nn.Parameter(torch.zeros(n_variables, width))
        self.selector = GatedResidualNetwork(n_variables * width, width, n_variables, dropout)
        self.processors = VariableGRNs(n_variables, width, dropout)

    def embedded_linear(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``layer(embedded.flatten(-2))`` for ``(rows, n_variables)`` scalars ``x``, computed
        as ``x @ M + c`` with the embedding folded into ``layer``'s weight."""
        n_variables, width = self.embed_weight.shape
        if isinstance(layer, nn.Linear):
            weight, bias = layer.weight.view(-1, n_variables, width), layer.bias
        else:  # the identity skip when width is 1
            weight, bias = torch.eye(n_variables, dtype=x.dtype, device=x.device)[..., None], 0.0
        return torch.addmm(bias + torch.einsum("ovw,vw->o", weight, self.embed_bias), x,
                           torch.einsum("ovw,vw->vo", weight, self.embed_weight))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``(batch, time, n_variables)`` to ``(batch, time, width)`` and the weights
        ``(batch, time, n_variables)``."""
        lead, rows = x.shape[:-1], x.reshape(-1, x.shape[-1])
        grn = self.selector
        hidden = grn.output(F.elu(self.embedded_linear(grn.hidden, rows)))
        weights = torch.softmax(grn.gated_skip(hidden, self.embedded_linear(grn.skip, rows)),
                                dim=-1)
        keep = self.processors.draw_dropout(len(rows), x.device)
        columns, shares = rows.t().contiguous(), weights.t().contiguous()
        mixed = []
        for start in range(0, max(len(rows), 1), self.ROWS_PER_PASS):  # one pass if empty
            part = slice(start, start + self.ROWS_PER_PASS)
            embedded = torch.addcmul(self.embed_bias[:, None], columns[:, part, None],
                                     self.embed_weight[:, None])
            processed = self.processors(embedded, None if keep is None else keep[:, part])
            mixed.append((processed * shares[:, part, None]).sum(dim=0))
        return torch.cat(mixed).view(*lead, self.processors.width), weights.view(x.shape)


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
