"""Learned baselines for graph tasks, each a `NeuralMethod` trained by the shared loop on
the relative L2 error of the member mean ``R_k`` of its node output at every training
level (`NeuralMethod.data_loss`); ``domains = ("graph",)``.

* ``gnn``: residual message passing with the task's sparse coupling matrix.
* ``roma``: ROMA-style learned pooling to the super-nodes of every level, coarse
  self-attention and fine <-> coarse attention (Jiang et al.'s renormalisation idea with the
  task's partition hierarchy in place of Laplacian renormalisation).
* ``deeponet_graph``: a DeepONet whose sensors are all nodes and whose trunk reads each
  node's static features and a learned embedding.

The networks see the partition levels of the task's spec (its geometry, like a grid's
shape), including the unseen factor's: no target of an unseen factor is ever read.
Rollouts prolong the coarse state to the fine graph (each node takes its super-node's
value, `GraphDomain.prolong`), apply the network and restrict again: the graph analogue
of a Fourier operator evaluated on the coarse grid. The prolonged field has |z| <= 1
where the training inputs were unit vectors, so a rollout tests the network off its
training distribution, as it does for the grid methods.
"""

from __future__ import annotations

import abc

import numpy as np
import torch

from methods.graph.models import GraphDeepONetNet, MessagePassingNet, RomaNet, Skip
from methods.graph.ops import GraphOps
from methods.neural import NeuralMethod
from nskernel import Prediction, TaskSpec


class GraphNeural(NeuralMethod):
    """Abstract base of the node-field networks: their shared width, the persistence
    skip (see `methods.graph.models`) and the data loss."""

    domains = ("graph",)
    width: int = 32

    def check_params(self) -> None:
        super().check_params()
        self.check_positive_ints("width")

    def skip(self, spec: TaskSpec) -> Skip:
        """Persistence in normalised output units on a time-dependent task with matching
        channels (``x_phys`` re-normalised as an output), else zero."""
        c_out = spec.out_channels
        if spec.time_dependent and spec.in_channels == c_out:
            scale = self._x_std / self._y_std
            return Skip(scale.reshape(-1), ((self._x_mean - self._y_mean) / self._y_std).reshape(-1))
        zero = torch.zeros(c_out, dtype=self._x_mean.dtype, device=self._x_mean.device)
        return Skip(zero, zero)

    @abc.abstractmethod
    def network(self, ops: GraphOps, spec: TaskSpec, skip: Skip) -> torch.nn.Module:
        """The node-field network of this method."""

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        assert spec.graph is not None  # `domains` keeps grid tasks away
        return self.network(GraphOps(spec.graph), spec, self.skip(spec))

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"data": self.data_loss(self.model(x), ys)}

    @torch.no_grad()
    def advance(self, state: np.ndarray, k: int) -> Prediction:
        """Rollout step from a level-k state ``(N, C, n_coarse(k))``: ``R_k net(P_k state)``
        with ``P_k`` the piecewise-constant prolongation to the fine graph."""
        if not self._spec.time_dependent:
            return super().advance(state, k)
        assert self._spec.graph is not None  # `domains` keeps grid tasks away
        with self.rollout_mode():
            return self._batched(self._spec.graph.prolong(np.asarray(state), k), (k,))[k]


class GNN(GraphNeural):
    name = "gnn"
    summary = "message-passing GNN on the fine graph (torch sparse), restricted by the member mean"
    n_layers: int = 3

    def check_params(self) -> None:
        super().check_params()
        self.check_positive_ints("n_layers")

    def network(self, ops: GraphOps, spec: TaskSpec, skip: Skip) -> torch.nn.Module:
        return MessagePassingNet(ops, spec.in_channels, spec.out_channels, self.width, self.n_layers, skip)


class Roma(GraphNeural):
    name = "roma"
    summary = "ROMA-style: learned pooling to super-nodes, coarse self-attention, fine<->coarse attention"
    n_layers: int = 2
    heads: int = 4

    def check_params(self) -> None:
        super().check_params()
        self.check_positive_ints("n_layers", "heads")
        if self.width % self.heads:
            raise ValueError(f"width={self.width} must be a multiple of heads={self.heads}")

    def network(self, ops: GraphOps, spec: TaskSpec, skip: Skip) -> torch.nn.Module:
        return RomaNet(ops, spec.in_channels, spec.out_channels, self.width, self.n_layers, self.heads, skip)


class GraphDeepONet(GraphNeural):
    name = "deeponet_graph"
    summary = "DeepONet on a graph: every node a sensor (branch), static node features + embedding (trunk)"
    width: int = 64
    basis: int = 32
    embed: int = 8

    def check_params(self) -> None:
        super().check_params()
        self.check_positive_ints("basis", "embed")

    def network(self, ops: GraphOps, spec: TaskSpec, skip: Skip) -> torch.nn.Module:
        return GraphDeepONetNet(ops, spec.in_channels, spec.out_channels, self.width, self.basis, self.embed, skip)


__all__ = ["GNN", "GraphDeepONet", "GraphNeural", "Roma"]
