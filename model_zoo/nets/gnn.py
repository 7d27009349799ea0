"""Graph network over the assets of each time step: a correlation graph, graph convolutions.

At bar t the nodes are the assets that have a window ending at t. Each node's window goes
through a small temporal encoder (a GRU; its last hidden state is the node's embedding).
Edges are the correlations of the nodes' one-bar returns (the ``ret_1`` column) over the
window itself, so the graph uses only what is known at t. Graph convolutions in the style
of Kipf and Welling (2017), "Semi-Supervised Classification with Graph Convolutional
Networks", ICLR, mix the embeddings: ``H <- H + ReLU(A_hat H W)`` with
``A_hat = D^-1/2 (I + C) D^-1/2``, ``C`` the signed correlations between distinct nodes
and ``D`` the row sums of ``|I + C|`` (signed edges: an asset moving against another
still informs it). A linear head scores each node. A lone asset is a one-node graph (its
self loop).

One sample of the shared loop is one time step: :meth:`GNNModel.arrange` stacks the
windows of a time into ``(n_assets, lookback, features)``, padding absent assets with NaN,
which the network masks out of the graph and the loop out of the loss. Mini-batches of the
shared loop are therefore batches of time steps (``batch_size`` counts time steps), and a
time step's nodes are never split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from model_zoo.base import TARGET_FEATURE, Capabilities, ModelConfig, default_times
from model_zoo.lightning import TorchNetModel
from model_zoo.registry import ARCHITECTURES


def correlation_adjacency(returns: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Normalised signed adjacency ``D^-1/2 (I + C) D^-1/2`` of each time step's nodes.

    Parameters
    ----------
    returns : torch.Tensor
        ``(batch, nodes, lookback)`` returns over each node's window.
    present : torch.Tensor
        ``(batch, nodes)`` True for real nodes, False for padding (no edges).

    Returns
    -------
    torch.Tensor
        ``(batch, nodes, nodes)``; rows and columns of padding are zero but for the
        diagonal, so a real node's neighbourhood holds real nodes only.
    """
    centred = returns - returns.mean(dim=-1, keepdim=True)
    scale = centred.norm(dim=-1)
    correlation = centred @ centred.transpose(-1, -2)
    correlation = correlation / (scale.unsqueeze(-1) * scale.unsqueeze(-2)).clamp(min=1e-8)
    edges = present.unsqueeze(-1) & present.unsqueeze(-2)
    eye = torch.eye(returns.shape[1], dtype=torch.bool, device=returns.device)
    adjacency = torch.where(eye, 1.0, torch.where(edges, correlation, 0.0))
    inverse_root_degree = adjacency.abs().sum(dim=-1).rsqrt()
    return inverse_root_degree.unsqueeze(-1) * adjacency * inverse_root_degree.unsqueeze(-2)


class GraphConvolution(nn.Module):
    """Residual graph convolution ``H + Dropout(ReLU(A_hat H W))``."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        return h + self.dropout(torch.relu(adjacency @ self.linear(h)))


class GNNNetwork(nn.Module):
    """GRU node encoder, correlation graph, ``num_layers`` graph convolutions, node head.

    Parameters
    ----------
    n_features : int
        Size of the windows' last axis.
    target_index : int
        Position of ``ret_1`` on that axis (the returns the edges correlate).
    hidden_size : int
        Node embedding width (GRU hidden units).
    num_layers : int
        Graph convolution layers.
    dropout : float
        Dropout after each graph convolution.
    """

    def __init__(self, n_features: int, target_index: int, hidden_size: int, num_layers: int,
                 dropout: float) -> None:
        super().__init__()
        self.target_index = target_index
        self.encoder = nn.GRU(n_features, hidden_size, batch_first=True)
        self.convolutions = nn.ModuleList(
            GraphConvolution(hidden_size, dropout) for _ in range(num_layers)
        )
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, nodes, lookback, n_features)`` (NaN windows: padding) to
        ``(batch, nodes)`` scores."""
        batch, nodes, lookback, n_features = x.shape
        present = torch.isfinite(x).flatten(2).all(dim=-1)
        x = torch.where(present[..., None, None], x, 0.0)
        _, hidden = self.encoder(x.reshape(batch * nodes, lookback, n_features))
        h = hidden[-1].reshape(batch, nodes, -1)
        adjacency = correlation_adjacency(x[..., self.target_index], present)
        for convolution in self.convolutions:
            h = convolution(h, adjacency)
        return self.head(h).squeeze(-1)


class GNNModel(TorchNetModel):
    """Graph network regressor of each asset's forward return.

    Hyperparameters: ``hidden_size`` (32), ``num_layers`` (graph convolutions, 1),
    ``dropout`` (0.0), plus :class:`~model_zoo.lightning.TrainingHParams` (``batch_size``
    counts time steps).
    """

    capabilities: ClassVar[Capabilities] = ARCHITECTURES["gnn"].capabilities
    network_defaults: ClassVar[Mapping[str, Any]] = {
        "hidden_size": 32,
        "num_layers": 1,
        "dropout": 0.0,
    }

    def build_network(self, config: ModelConfig, params: Mapping[str, Any]) -> nn.Module:
        if TARGET_FEATURE not in config.feature_names:
            raise ValueError(f"GNNModel correlates the assets' {TARGET_FEATURE!r}, which the "
                             f"features {list(config.feature_names)} lack")
        if params["hidden_size"] < 1 or params["num_layers"] < 0:
            raise ValueError(f"GNNModel: invalid network hyperparameters {dict(params)}")
        return GNNNetwork(
            n_features=len(config.feature_names),
            target_index=config.feature_names.index(TARGET_FEATURE),
            hidden_size=params["hidden_size"],
            num_layers=params["num_layers"],
            dropout=params["dropout"],
        )

    def arrange(self, X: np.ndarray, groups: np.ndarray | None,
                times: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Stack each time step's windows into one sample ``(n_assets, lookback, features)``.

        Assets are the distinct ``groups`` (one, when None); ``times`` default to
        :func:`~model_zoo.base.default_times`. Slots an asset does not fill at a time are NaN.

        Raises
        ------
        ValueError
            Two rows share an asset and a time (naming them), or lengths differ.
        """
        groups = np.zeros(len(X), dtype=np.int64) if groups is None else np.asarray(groups)
        times = default_times(groups) if times is None else np.asarray(times)
        if len(groups) != len(X) or len(times) != len(X):
            raise ValueError(f"GNNModel: {len(X)} windows but {len(groups)} groups and "
                             f"{len(times)} times")
        _, node = np.unique(groups, return_inverse=True)
        _, step = np.unique(times, return_inverse=True)
        n_nodes = int(node.max()) + 1 if len(X) else 0
        slots = step * n_nodes + node
        _, first, counts = np.unique(slots, return_index=True, return_counts=True)
        if (counts > 1).any():
            repeated = np.flatnonzero(np.isin(slots, slots[first[counts > 1]]))
            raise ValueError(f"GNNModel: rows {repeated[:6].tolist()} share an asset and a "
                             "time; give one window per asset per time")
        n_steps = int(step.max()) + 1 if len(X) else 0
        samples = np.full((n_steps * n_nodes, *X.shape[1:]), np.nan, dtype=np.float32)
        samples[slots] = X
        return samples.reshape(n_steps, n_nodes, *X.shape[1:]), slots
