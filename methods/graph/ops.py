"""Graph operators for learned methods on graph tasks (`nskernel.GraphDomain`), in torch.

* `GraphOps`: the graph of a task as torch objects: the weighted adjacency as a coalesced
  sparse COO matrix (``propagate``: ``h_i <- sum_j w_ij h_j`` for a batch, one
  `torch.sparse.mm`), static node features, and the partition levels as index tensors.
* `segment_softmax_pool`: attention pooling of node features to super-nodes (a softmax
  of learned scores over each super-node's members).

PyTorch Geometric is not used: it is not a dependency of the suite (its core, 2.8.1,
installs and runs with torch 2.13 CPU given its ``psutil`` dependency, checked in a scratch
directory), and everything here is a sparse-dense product or an ``index_add_``, which
torch has natively.
"""

from __future__ import annotations

import numpy as np
import torch

from nskernel import GraphDomain


class GraphOps:
    """Torch views of a `GraphDomain`, cached per (device, dtype); not a module (nothing
    here is trained or saved: it is rebuilt from the task's spec)."""

    def __init__(self, graph: GraphDomain) -> None:
        self.graph = graph
        self.n = graph.n_nodes
        self._cache: dict[tuple[str, torch.dtype], dict[str, torch.Tensor]] = {}

    def tensors(self, like: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (str(like.device), like.dtype)
        if key not in self._cache:
            g = self.graph
            adj = torch.sparse_coo_tensor(torch.as_tensor(g.edges), torch.as_tensor(g.weights), (self.n, self.n),
                                          check_invariants=True)
            deg = np.bincount(g.edges[0], minlength=self.n).astype(np.float64)
            feats = [np.log1p(deg)] + [np.asarray(v, dtype=np.float64) for _, v in sorted(g.node_features.items())]
            f = np.stack(feats)  # (F, n), standardised per feature
            f = (f - f.mean(axis=1, keepdims=True)) / (f.std(axis=1, keepdims=True) + 1e-8)
            out = {"adj": adj.coalesce().to(device=like.device, dtype=like.dtype),
                   "features": torch.as_tensor(f, device=like.device, dtype=like.dtype)}
            for k in g.k_values:
                out[f"assign{k}"] = torch.as_tensor(g.assignment(k), device=like.device)
                out[f"sizes{k}"] = torch.as_tensor(g.sizes(k), device=like.device, dtype=like.dtype)
            self._cache[key] = out
        return self._cache[key]

    @property
    def n_features(self) -> int:
        return 1 + len(self.graph.node_features)

    def propagate(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, n, d) -> (B, n, d)`` (channels last): ``sum_j w_ij h_j`` per sample and channel."""
        b, n, d = h.shape
        adj = self.tensors(h)["adj"]
        flat = h.transpose(0, 1).reshape(n, b * d)
        return torch.sparse.mm(adj, flat).reshape(n, b, d).transpose(0, 1)

    def features(self, like: torch.Tensor) -> torch.Tensor:
        """Static node features ``(B, n, F)``: log(1 + degree) and the task's node features."""
        f = self.tensors(like)["features"].T
        return f.unsqueeze(0).expand(like.shape[0], -1, -1)

    def assignment(self, k: int, like: torch.Tensor) -> torch.Tensor:
        return self.tensors(like)[f"assign{k}"]

    def n_coarse(self, k: int) -> int:
        return self.graph.n_coarse(k)


def segment_softmax_pool(h: torch.Tensor, score: torch.Tensor, index: torch.Tensor, n_out: int) -> torch.Tensor:
    """Attention pooling ``(B, n, d), (B, n) -> (B, n_out, d)``: ``sum_i a_i h_i`` over the
    members of each super-node, ``a = softmax(score)`` within it (shifted by the segment's
    maximum score for stability; the shift cancels, so it carries no gradient)."""
    idx = index.unsqueeze(0).expand(score.shape[0], -1)
    peak = torch.full((score.shape[0], n_out), -torch.inf, dtype=score.dtype, device=score.device)
    peak = peak.scatter_reduce(1, idx, score.detach(), reduce="amax")
    e = torch.exp(score - peak.gather(1, idx))  # (B, n), 1 at each segment's maximum
    den = torch.zeros(h.shape[0], n_out, dtype=h.dtype, device=h.device).index_add_(1, index, e)
    num = torch.zeros(h.shape[0], n_out, h.shape[2], dtype=h.dtype, device=h.device)
    num.index_add_(1, index, h * e.unsqueeze(2))
    return num / den.clamp_min(torch.finfo(h.dtype).tiny).unsqueeze(2)


__all__ = ["GraphOps", "segment_softmax_pool"]
