"""Networks on the nodes of a graph task: ``(B, C_in, n) -> (B, C_out, n)`` in the
normalised units of `methods.neural.NeuralMethod`; the method restricts their output by
the member mean (``R_k``), so one network serves every partition level.

Every network adds its learned output to a fixed affine *skip* ``scale * x + shift``
(buffers): on a time-dependent task with as many input as output channels, the
persistence prediction mapped to the output's normalisation; the head starts at zero, so
an untrained network predicts persistence and training learns the one-interval change.

* `MessagePassingNet`: residual message passing, ``h <- h + MLP([h, W h])`` with the
  task's coupling matrix W (sparse), on per-node input and static features.
* `RomaNet`: ROMA-style multiscale attention: message passing on the fine graph, learned
  attention pooling of the nodes to the super-nodes of every partition level, self-attention
  among the coarsest super-nodes, and per-node attention of each fine node over itself and
  its super-nodes at every level (fine <-> coarse exchange), repeated ``layers`` times.
* `GraphDeepONetNet`: DeepONet: a branch MLP of the whole input field (every node a
  sensor) gives ``p`` coefficients per output channel, a trunk MLP of each node's static
  features and a learned node embedding gives ``p`` basis values per node.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from methods.graph.ops import GraphOps, segment_softmax_pool


class Skip(nn.Module):
    """``scale * x + shift`` per channel (fixed buffers ``(1, C, 1)``)."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.reshape(1, -1, 1).clone())
        self.register_buffer("shift", shift.reshape(1, -1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.shift if self.scale.shape[1] == x.shape[1] else self.shift


def _pointwise(c_in: int, width: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, width, 1), nn.GELU(), nn.Conv1d(width, c_out, 1))


def _zero_head(width: int, c_out: int) -> nn.Conv1d:
    head = nn.Conv1d(width, c_out, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class MessagePassingNet(nn.Module):
    def __init__(self, ops: GraphOps, c_in: int, c_out: int, width: int, layers: int, skip: Skip) -> None:
        super().__init__()
        self.ops, self.skip = ops, skip
        self.lift = nn.Conv1d(c_in + ops.n_features, width, 1)
        self.layers = nn.ModuleList(_pointwise(2 * width, width, width) for _ in range(layers))
        self.head = _zero_head(width, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lift(torch.cat([x, self.ops.features(x)], dim=1))
        for layer in self.layers:
            h = h + layer(torch.cat([h, self.ops.propagate(h)], dim=1))
        return self.skip(x) + self.head(h)


class MultiscaleBlock(nn.Module):
    """One ROMA-style block (module docstring) over the levels ``ks``."""

    def __init__(self, ops: GraphOps, width: int, heads: int, ks: tuple[int, ...]) -> None:
        super().__init__()
        self.ops, self.ks = ops, ks
        self.local = _pointwise(2 * width, width, width)
        self.score = nn.ModuleDict({str(k): nn.Conv1d(width, 1, 1) for k in ks})
        self.level_embed = nn.Parameter(torch.zeros(len(ks) + 1, width, 1))
        self.coarse_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.coarse_norm = nn.LayerNorm(width)
        self.q, self.kv = nn.Conv1d(width, width, 1), nn.Conv1d(width, 2 * width, 1)
        self.out = nn.Conv1d(width, width, 1)
        self.ffn = _pointwise(width, 2 * width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.local(torch.cat([h, self.ops.propagate(h)], dim=1))
        tokens = []
        for k in self.ks:  # learned pooling to every level's super-nodes
            idx = self.ops.assignment(k, h)
            tokens.append(segment_softmax_pool(h, self.score[str(k)](h)[:, 0], idx, self.ops.n_coarse(k)))
        top = tokens[-1].transpose(1, 2)  # (B, m, d): the coarsest level attends to itself
        attn, _ = self.coarse_attn(self.coarse_norm(top), self.coarse_norm(top), self.coarse_norm(top),
                                   need_weights=False)
        tokens[-1] = (top + attn).transpose(1, 2)
        # each fine node attends over itself and its super-node at every level
        cands = [h] + [t[..., self.ops.assignment(k, h)] for k, t in zip(self.ks, tokens)]
        cand = torch.stack(cands, dim=1) + self.level_embed  # (B, L+1, d, n)
        b, l1, d, n = cand.shape
        q = self.q(h)
        kv = self.kv(cand.reshape(b * l1, d, n)).reshape(b, l1, 2 * d, n)
        keys, vals = kv[:, :, :d], kv[:, :, d:]
        weights = torch.softmax((keys * q.unsqueeze(1)).sum(2) / math.sqrt(d), dim=1)  # (B, L+1, n)
        h = h + self.out((weights.unsqueeze(2) * vals).sum(1))
        return h + self.ffn(h)


class RomaNet(nn.Module):
    def __init__(self, ops: GraphOps, c_in: int, c_out: int, width: int, layers: int, heads: int, skip: Skip) -> None:
        super().__init__()
        self.ops, self.skip = ops, skip
        self.lift = nn.Conv1d(c_in + ops.n_features, width, 1)
        ks = ops.graph.k_values
        self.blocks = nn.ModuleList(MultiscaleBlock(ops, width, heads, ks) for _ in range(layers))
        self.head = _zero_head(width, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lift(torch.cat([x, self.ops.features(x)], dim=1))
        for block in self.blocks:
            h = block(h)
        return self.skip(x) + self.head(h)


class GraphDeepONetNet(nn.Module):
    def __init__(self, ops: GraphOps, c_in: int, c_out: int, width: int, basis: int, embed: int, skip: Skip) -> None:
        super().__init__()
        self.ops, self.skip, self.c_out, self.basis = ops, skip, c_out, basis
        n = ops.n
        self.branch = nn.Sequential(nn.Linear(c_in * n, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                                    nn.Linear(width, c_out * basis))
        self.embed = nn.Parameter(0.1 * torch.randn(embed, n))
        self.trunk = _pointwise(ops.n_features + embed, width, basis)
        self.bias = nn.Parameter(torch.zeros(1, c_out, 1))
        nn.init.zeros_(self.branch[-1].weight)
        nn.init.zeros_(self.branch[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coef = self.branch(x.flatten(1)).view(len(x), self.c_out, self.basis)  # (B, C, p)
        feats = torch.cat([self.ops.features(x[:1])[0], self.embed.to(x.dtype)], dim=0)[None]
        t = self.trunk(feats)[0]  # (p, n)
        return self.skip(x) + torch.einsum("bcp,pn->bcn", coef, t) / math.sqrt(self.basis) + self.bias


__all__ = ["GraphDeepONetNet", "MessagePassingNet", "MultiscaleBlock", "RomaNet", "Skip"]
