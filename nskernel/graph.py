"""Graph domains: the kernel's contract for tasks on the nodes of a fixed graph.

A graph task publishes a `GraphDomain` in ``TaskSpec.graph``. Fields are channel-first
node arrays ``(..., C, n_nodes)``; the coarse level of factor ``k`` is a partition of the
nodes into ``n_coarse(k)`` super-nodes, and ``R_k`` is the **mean over each super-node's
members** (the graph analogue of the finite-volume block average of `nskernel.grid`):
``sizes(k) . R_k u = sum(u)`` exactly, so sums are preserved like grid integrals.

The factors stay integers: ``k`` is a nominal coarsening factor (a level of about
``n / k`` super-nodes), so harness options such as ``--k-train 4,8 --k-test 4,8,16`` mean
the same on grids and graphs. Levels are nested: every super-node of a finer level lies
inside one super-node of each coarser level, so ``R_k = R_{k <- j} R_j`` with the
size-weighted mean ``R_{k <- j}`` (`GraphDomain.restrict` with ``from_k = j``).

NumPy only; torch tensors are accepted where noted (torch is imported lazily).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class GraphDomain:
    """A fixed graph with a nested hierarchy of node partitions.

    * ``n_nodes``: number of fine nodes.
    * ``edges (2, E)`` int64: directed COO pairs ``(i, j)`` (an undirected graph lists both
      directions); ``weights (E,)``: the coupling of each pair (e.g. ``A_ij / deg_i``).
    * ``node_features``: static per-node arrays ``(n_nodes,)`` by name (e.g. the natural
      frequencies ``"omega"``), the same for every sample.
    * ``levels``: ``{k: assignment (n_nodes,)}``, fine node -> super-node ``0..n_coarse-1``
      (every super-node non-empty), nested in increasing k.
    """

    n_nodes: int
    edges: np.ndarray
    weights: np.ndarray
    levels: Mapping[int, np.ndarray]
    node_features: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.n_nodes
        if n < 1:
            raise ValueError(f"a graph needs at least one node, got n_nodes={n}")
        if self.edges.ndim != 2 or self.edges.shape[0] != 2 or self.weights.shape != (self.edges.shape[1],):
            raise ValueError(f"edges must be (2, E) and weights (E,), got {self.edges.shape} and {self.weights.shape}")
        if self.edges.size and (self.edges.min() < 0 or self.edges.max() >= n):
            raise ValueError(f"edge endpoints must lie in 0..{n - 1}")
        for name, feat in self.node_features.items():
            if np.shape(feat) != (n,):
                raise ValueError(f"node feature {name!r} has shape {np.shape(feat)}, expected ({n},)")
        ks = sorted(self.levels)
        for k in ks:
            a = np.asarray(self.levels[k])
            if k < 2 or a.shape != (n,):
                raise ValueError(f"level k={k}: factors must be >= 2 and assignments ({n},), got {a.shape}")
            if np.bincount(a).min() < 1 or a.min() < 0:
                raise ValueError(f"level k={k}: super-nodes must be numbered 0..n_coarse-1, none empty")
        for fine, coarse in zip(ks, ks[1:]):
            self.parent(fine, coarse)  # raises if the levels are not nested

    # -- levels ---------------------------------------------------------------------------
    @property
    def k_values(self) -> tuple[int, ...]:
        return tuple(sorted(self.levels))

    def assignment(self, k: int) -> np.ndarray:
        """Fine node -> super-node of level ``k`` (``k = 1``: the identity)."""
        if k == 1:
            return np.arange(self.n_nodes)
        if k not in self.levels:
            raise ValueError(f"the graph has no partition level k={k}; valid: 1, {', '.join(map(str, self.k_values))}")
        return np.asarray(self.levels[k])

    def n_coarse(self, k: int) -> int:
        """Super-nodes at level ``k`` (``n_nodes`` at ``k = 1``)."""
        return self.n_nodes if k == 1 else int(self.assignment(k).max()) + 1

    def sizes(self, k: int) -> np.ndarray:
        """Fine nodes per super-node of level ``k``."""
        return np.bincount(self.assignment(k), minlength=self.n_coarse(k))

    def parent(self, j: int, k: int) -> np.ndarray:
        """Super-node of level ``j`` -> super-node of the coarser level ``k`` (nested)."""
        fine, coarse = self.assignment(j), self.assignment(k)
        out = np.full(self.n_coarse(j), -1)
        out[fine] = coarse
        if (out[fine] != coarse).any():
            raise ValueError(f"partition levels j={j} and k={k} are not nested")
        return out

    # -- operators ------------------------------------------------------------------------
    def restrict(self, values: Any, k: int, from_k: int = 1) -> Any:
        """``R_k``: member mean over the last axis, ``(..., n_coarse(from_k)) ->
        (..., n_coarse(k))``; from a coarser level ``from_k`` the mean is weighted by the
        level's super-node sizes (so ``R_k = R_{k <- j} R_j``). NumPy or torch."""
        if k == from_k:
            return values
        index = self.parent(from_k, k)
        weight = self.sizes(from_k).astype(np.float64)
        return _weighted_mean(values, index, weight, self.n_coarse(k))

    def prolong(self, values: Any, k: int) -> Any:
        """Piecewise-constant prolongation ``(..., n_coarse(k)) -> (..., n_nodes)``;
        ``restrict(prolong(u, k), k) == u``."""
        return values if k == 1 else values[..., self.assignment(k)]


def _weighted_mean(values: Any, index: np.ndarray, weight: np.ndarray, n_out: int) -> Any:
    """``out[..., a] = sum_{i: index_i = a} w_i v_i / sum_{i: index_i = a} w_i``."""
    if values.shape[-1] != len(index):
        raise ValueError(f"values have {values.shape[-1]} nodes on the last axis, the level has {len(index)}")
    total = np.bincount(index, weights=weight, minlength=n_out)
    if isinstance(values, np.ndarray):
        flat = values.reshape(-1, len(index)).astype(np.float64, copy=False) * weight
        rows = len(flat)
        idx = (index[None, :] + n_out * np.arange(rows)[:, None]).ravel()
        sums = np.bincount(idx, weights=flat.ravel(), minlength=n_out * rows).reshape(rows, n_out)
        return (sums / total).reshape(*values.shape[:-1], n_out)
    import torch

    idx = torch.as_tensor(index, device=values.device)
    w = torch.as_tensor(weight, dtype=values.dtype, device=values.device)
    sums = torch.zeros(*values.shape[:-1], n_out, dtype=values.dtype, device=values.device)
    sums.index_add_(-1, idx, values * w)
    return sums / torch.as_tensor(total, dtype=values.dtype, device=values.device)


__all__ = ["GraphDomain"]
