"""Networks on the nodes of a graph task: ``(B, C_in, n) -> (B, C_out, n)`` in the
normalised units of `methods.neural.NeuralMethod`; the method restricts their output by
the member mean (``R_k``), so one network serves every partition level. Inside, node
features are channels-last ``(B, n, d)`` and mixed by `nn.Linear` (forward+backward of a
64 -> 32 map on (8, 1120) nodes: 90 ms as `Linear`, 132 ms as a 1x1 `Conv1d`, measured on
this heavily loaded 2-core machine).

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
    return nn.Sequential(nn.Linear(c_in, width), nn.GELU(), nn.Linear(width, c_out))


def _zero_head(width: int, c_out: int) -> nn.Linear:
    head = nn.Linear(width, c_out)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class MessagePassingNet(nn.Module):
    def __init__(self, ops: GraphOps, c_in: int, c_out: int, width: int, layers: int, skip: Skip) -> None:
        super().__init__()
        self.ops, self.skip = ops, skip
        self.lift = nn.Linear(c_in + ops.n_features, width)
        self.layers = nn.ModuleList(_pointwise(2 * width, width, width) for _ in range(layers))
        self.head = _zero_head(width, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xt = x.transpose(1, 2)
        h = self.lift(torch.cat([xt, self.ops.features(xt)], dim=2))
        for layer in self.layers:
            h = h + layer(torch.cat([h, self.ops.propagate(h)], dim=2))
        return self.skip(x) + self.head(h).transpose(1, 2)


class MultiscaleBlock(nn.Module):
    """One ROMA-style block (module docstring) over the levels ``ks``."""

    def __init__(self, ops: GraphOps, width: int, heads: int, ks: tuple[int, ...]) -> None:
        super().__init__()
        self.ops, self.ks = ops, ks
        self.local = _pointwise(2 * width, width, width)
        self.score = nn.ModuleDict({str(k): nn.Linear(width, 1) for k in ks})
        self.level_embed = nn.Parameter(torch.zeros(len(ks) + 1, 1, width))
        self.coarse_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.coarse_norm = nn.LayerNorm(width)
        self.q, self.kv = nn.Linear(width, width), nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.ffn = _pointwise(width, 2 * width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h (B, n, d) -> (B, n, d)``."""
        h = h + self.local(torch.cat([h, self.ops.propagate(h)], dim=2))
        tokens = []
        for k in self.ks:  # learned pooling to every level's super-nodes, (B, n_k, d)
            idx = self.ops.assignment(k, h)
            tokens.append(segment_softmax_pool(h, self.score[str(k)](h)[..., 0], idx, self.ops.n_coarse(k)))
        top = self.coarse_norm(tokens[-1])  # the coarsest level attends to itself
        tokens[-1] = tokens[-1] + self.coarse_attn(top, top, top, need_weights=False)[0]
        # each fine node attends over itself and its super-node at every level
        cands = [h] + [t[:, self.ops.assignment(k, h)] for k, t in zip(self.ks, tokens)]
        cand = torch.stack(cands, dim=1) + self.level_embed  # (B, L+1, n, d)
        d = cand.shape[-1]
        keys, vals = self.kv(cand).split(d, dim=-1)
        weights = torch.softmax((keys * self.q(h).unsqueeze(1)).sum(-1) / math.sqrt(d), dim=1)  # (B, L+1, n)
        h = h + self.out((weights.unsqueeze(-1) * vals).sum(1))
        return h + self.ffn(h)


class RomaNet(nn.Module):
    def __init__(self, ops: GraphOps, c_in: int, c_out: int, width: int, layers: int, heads: int, skip: Skip) -> None:
        super().__init__()
        self.ops, self.skip = ops, skip
        self.lift = nn.Linear(c_in + ops.n_features, width)
        ks = ops.graph.k_values
        self.blocks = nn.ModuleList(MultiscaleBlock(ops, width, heads, ks) for _ in range(layers))
        self.head = _zero_head(width, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xt = x.transpose(1, 2)
        h = self.lift(torch.cat([xt, self.ops.features(xt)], dim=2))
        for block in self.blocks:
            h = block(h)
        return self.skip(x) + self.head(h).transpose(1, 2)


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
        feats = torch.cat([self.ops.features(x[:1, :1].transpose(1, 2))[0], self.embed.T.to(x.dtype)], dim=1)
        t = self.trunk(feats)  # (n, p)
        return self.skip(x) + torch.einsum("bcp,np->bcn", coef, t) / math.sqrt(self.basis) + self.bias


__all__ = ["GraphDeepONetNet", "MessagePassingNet", "MultiscaleBlock", "RomaNet", "Skip"]
