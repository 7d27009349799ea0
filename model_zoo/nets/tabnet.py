"""TabNet on the flattened window, compact and trained on the shared loop.

Arik and Pfister (2021), "TabNet: Attentive Interpretable Tabular Learning", AAAI. After a
batch norm of the inputs, ``n_steps`` decision steps each pick features with a sparse mask
(sparsemax of the attentive transformer's output, scaled by the prior ``P``, which
``gamma`` relaxes: ``P <- P * (gamma - M)``), process the masked inputs with a feature
transformer (GLU blocks shared by all steps, then the step's own), and add
``ReLU(d_i)`` to the decision; a linear head maps the summed decision to the forecast.
The mask entropy penalty of the paper (weight ``sparsity``) reaches the loss through the
shared loop's auxiliary-loss hook (:mod:`model_zoo.training_loop`).

Simplifications: plain batch norm (no ghost batches: the shared loop's batches are already
small) and ``n_d = n_a = hidden_size``.
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

SQRT_HALF = 0.5**0.5


def sparsemax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Euclidean projection of ``z`` onto the probability simplex along ``dim``.

    Martins and Astudillo (2016), "From Softmax to Sparsemax", ICML:
    ``p_i = max(z_i - tau, 0)`` with ``tau`` chosen so that ``p`` sums to one. Autograd
    through this closed form gives the exact sparsemax Jacobian (the support size is
    piecewise constant).
    """
    z = z - z.max(dim=dim, keepdim=True).values
    z_sorted = torch.sort(z, dim=dim, descending=True).values
    cumulative = z_sorted.cumsum(dim)
    shape = [1] * z.dim()
    shape[dim] = -1
    k = torch.arange(1, z.size(dim) + 1, device=z.device, dtype=z.dtype).view(shape)
    support = (1 + k * z_sorted > cumulative).sum(dim=dim, keepdim=True)
    tau = (cumulative.gather(dim, support - 1) - 1) / support.to(z.dtype)
    return torch.clamp(z - tau, min=0)


class BatchNorm(nn.BatchNorm1d):
    """Batch norm that uses its running statistics for a one-row training batch (whose own
    variance is undefined), so the last mini-batch of an epoch never fails."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                self.bias, False, 0.0, self.eps)
        return super().forward(x)


class GLUBlock(nn.Module):
    """``GLU(BN(Linear(x)))`` with output width ``width``."""

    def __init__(self, n_inputs: int, width: int, momentum: float) -> None:
        super().__init__()
        self.linear = nn.Linear(n_inputs, 2 * width, bias=False)
        self.norm = BatchNorm(2 * width, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.glu(self.norm(self.linear(x)), dim=-1)


class FeatureTransformer(nn.Module):
    """Shared GLU blocks followed by the step's own, residual with a ``sqrt(0.5)`` scale.

    Parameters
    ----------
    shared : nn.ModuleList
        GLU blocks every step shares (the first maps the inputs to ``width``).
    n_inputs, width, n_independent, momentum
        Shapes of the step's own ``n_independent`` GLU blocks.
    """

    def __init__(self, shared: nn.ModuleList, n_inputs: int, width: int, n_independent: int,
                 momentum: float) -> None:
        super().__init__()
        self.shared = shared
        first_width = n_inputs if len(shared) == 0 else width
        self.independent = nn.ModuleList(
            GLUBlock(first_width if i == 0 else width, width, momentum)
            for i in range(n_independent)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, block in enumerate([*self.shared, *self.independent]):
            x = block(x) if index == 0 else (x + block(x)) * SQRT_HALF
        return x


class TabNetNetwork(nn.Module):
    """TabNet encoder with a regression head on the flattened window.

    Parameters
    ----------
    n_inputs : int
        ``lookback * n_features``.
    hidden_size : int
        ``n_d = n_a``: width of the decision output and of the attention input.
    n_steps : int
        Decision steps.
    gamma : float
        Prior relaxation (1: each feature used at most once; larger: reused).
    n_shared, n_independent : int
        GLU blocks shared across steps and owned by each step.
    momentum : float
        Batch-norm momentum (torch convention).
    sparsity : float
        Weight of the mask entropy penalty returned by :meth:`auxiliary_loss`.
    """

    def __init__(self, n_inputs: int, hidden_size: int, n_steps: int, gamma: float,
                 n_shared: int, n_independent: int, momentum: float, sparsity: float) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.gamma = gamma
        self.sparsity = sparsity
        width = 2 * hidden_size
        shared = nn.ModuleList(
            GLUBlock(n_inputs if i == 0 else width, width, momentum) for i in range(n_shared)
        )
        self.input_norm = BatchNorm(n_inputs, momentum=momentum)
        self.transformers = nn.ModuleList(
            FeatureTransformer(shared, n_inputs, width, n_independent, momentum)
            for _ in range(n_steps + 1)
        )
        self.attentive = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_size, n_inputs, bias=False),
                          BatchNorm(n_inputs, momentum=momentum))
            for _ in range(n_steps)
        )
        self.head = nn.Linear(hidden_size, 1)
        self._entropy: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, lookback, n_features)`` to ``(batch,)``."""
        features = self.input_norm(x.flatten(1))
        prior = torch.ones_like(features)
        attention = self.transformers[0](features)[:, self.hidden_size :]
        decision = features.new_zeros(features.shape[0], self.hidden_size)
        entropy = features.new_zeros(())
        for step, attentive in enumerate(self.attentive):
            mask = sparsemax(prior * attentive(attention))
            prior = prior * (self.gamma - mask)
            entropy = entropy + (-mask * torch.log(mask + 1e-10)).sum(dim=1).mean()
            output = self.transformers[step + 1](mask * features)
            decision = decision + F.relu(output[:, : self.hidden_size])
            attention = output[:, self.hidden_size :]
        self._entropy = entropy / len(self.attentive)
        return self.head(decision).squeeze(-1)

    def auxiliary_loss(self) -> torch.Tensor:
        """``sparsity`` times the mean mask entropy of the latest forward pass (the paper's
        L_sparse), added to the training loss by the shared loop."""
        if self._entropy is None:
            raise RuntimeError("auxiliary_loss needs a forward pass first")
        return self.sparsity * self._entropy


class TabNetModel(TorchNetModel):
    """TabNet regressor of the forward return.

    Hyperparameters: ``hidden_size`` (``n_d = n_a``, 16), ``n_steps`` (3), ``gamma`` (1.3),
    ``n_shared`` (2), ``n_independent`` (2), ``momentum`` (batch norm, 0.02), ``sparsity``
    (lambda_sparse, 1e-3), plus :class:`~model_zoo.lightning.TrainingHParams`.
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["tabnet"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 16,
        "n_steps": 3,
        "gamma": 1.3,
        "n_shared": 2,
        "n_independent": 2,
        "momentum": 0.02,
        "sparsity": 1e-3,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        if (params["hidden_size"] < 1 or params["n_steps"] < 1 or params["gamma"] < 1
                or params["n_shared"] < 0 or params["n_independent"] < 0
                or params["n_shared"] + params["n_independent"] < 1):
            raise ValueError(f"TabNetModel: invalid network hyperparameters {dict(params)}")
        return TabNetNetwork(
            n_inputs=config.lookback * len(config.feature_names),
            hidden_size=params["hidden_size"],
            n_steps=params["n_steps"],
            gamma=params["gamma"],
            n_shared=params["n_shared"],
            n_independent=params["n_independent"],
            momentum=params["momentum"],
            sparsity=params["sparsity"],
        )
