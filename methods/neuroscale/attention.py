"""Cross-scale attention with one softmax over (scale, position) and linear cost.

The proposal's operator is

    U~(x) = sum_{l, l'} int alpha^(l,l')(x, y) V^(l')(y) dy,
    alpha^(l,.)(x, .) = softmax over ALL (l', y) of <Q^(l)(x), K^(l')(y)> / sqrt(d).

Global attention over every fine point costs O(N^2). Here a query at level ``l`` (grid
coarsened by ``2^l`` relative to the finest attention level) sees, in ONE softmax:

* a ``w x w`` window of keys at its own level and at every coarser level ``l' > l``,
  centred on the cell of level ``l'`` that contains the query (its ancestor), and
* ``G x G`` global tokens: the coarsest level adaptively pooled to a fixed ``G x G``
  grid, so every query has a global receptive field whatever the resolution.

Keys per query: ``(L + 1 - l) w^2 + G^2``, a constant; queries over all levels:
``N (1 + 1/4 + ...) < 4N/3``. Time and memory are therefore O(N) for fixed L, w, G.
Finer levels reach coarser queries through the conservative restriction that builds the
hierarchy (see `model.py`), so no query needs keys finer than itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ChannelNorm(nn.Module):
    """Layer norm over channels at every grid point (no spatial statistics, so the
    operator stays local in space and independent of the resolution)."""

    def __init__(self, width: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, width, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, width, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def _windows(t: torch.Tensor, heads: int, window: int) -> torch.Tensor:
    """``(B, C, H, W) -> (B, heads, C/heads, w*w, H, W)``: the zero-padded w x w
    neighbourhood of every cell."""
    b, c, h, w = t.shape
    cols = F.unfold(t, window, padding=window // 2)
    return cols.view(b, heads, c // heads, window * window, h, w)


def _window_mask(h: int, w: int, window: int, like: torch.Tensor) -> torch.Tensor:
    """``(w*w, H, W)`` bool: True where the window offset lies inside the grid, so the
    softmax support is exactly the real (scale, position) pairs (no padded keys)."""
    ones = torch.ones(1, 1, h, w, dtype=like.dtype, device=like.device)
    return F.unfold(ones, window, padding=window // 2).view(window * window, h, w) > 0.5


class CrossScaleAttention(nn.Module):
    """Joint-softmax attention over a hierarchy of ``levels`` grids, each twice as coarse
    as the previous one. Per-level projections ``W^(l)`` give Q, K, V (1x1 convolutions);
    a learned bias per (query level, key level, head, window offset) encodes relative
    position and scale, and one per (query level, head) weighs the global tokens."""

    def __init__(self, width: int, heads: int, levels: int, window: int, global_tokens: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width={width} is not divisible by heads={heads}")
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be odd and positive, got {window}")
        self.width, self.heads, self.levels = width, heads, levels
        self.window, self.global_tokens = window, global_tokens
        self.qkv = nn.ModuleList(nn.Conv2d(width, 3 * width, 1) for _ in range(levels))
        self.kv_global = nn.Conv2d(width, 2 * width, 1)
        self.proj = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(levels))
        self.rel_bias = nn.Parameter(torch.zeros(levels, levels, heads, window * window))
        self.global_bias = nn.Parameter(torch.zeros(levels, heads))

    def n_keys(self, level: int, coarsest_shape: tuple[int, int]) -> int:
        """Keys in the joint support of a query at ``level`` (interior query)."""
        g = self._global_grid(coarsest_shape)
        return (self.levels - level) * self.window**2 + g[0] * g[1]

    def _global_grid(self, coarsest_shape: tuple[int, int]) -> tuple[int, int]:
        return min(self.global_tokens, coarsest_shape[0]), min(self.global_tokens, coarsest_shape[1])

    def forward(self, us: list[torch.Tensor]) -> list[torch.Tensor]:
        """``us[l]``: normalised features ``(B, width, H/2^l, W/2^l)``; returns the
        attention output per level (same shapes), already projected."""
        outs, _ = self._attend(us, keep_weights=False)
        return outs

    def weights(self, us: list[torch.Tensor]) -> list[tuple[torch.Tensor, list[int]]]:
        """Attention weights per query level: ``(B, heads, H_l, W_l, n_keys)`` and the
        sizes of the key blocks (one per key level ``l' >= l``, then the global block).
        For inspection and tests."""
        _, ws = self._attend(us, keep_weights=True)
        return ws

    def _attend(
        self, us: list[torch.Tensor], keep_weights: bool
    ) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, list[int]]]]:
        if len(us) != self.levels:
            raise ValueError(f"expected {self.levels} levels, got {len(us)}")
        h, dh, w = self.heads, self.width // self.heads, self.window
        w2 = w * w
        qs, ks, vs = [], [], []
        for lvl, u in enumerate(us):
            q, k, v = self.qkv[lvl](u).chunk(3, dim=1)
            qs.append(q * (1.0 / math.sqrt(dh)))
            ks.append(_windows(k, h, w))  # (B, h, dh, w2, H_l, W_l)
            vs.append(_windows(v, h, w))
        # Global tokens: the coarsest level pooled to a fixed G x G grid (O(1) tokens).
        b = us[0].shape[0]
        g = self._global_grid((us[-1].shape[-2], us[-1].shape[-1]))
        kg, vg = self.kv_global(F.adaptive_avg_pool2d(us[-1], g)).flatten(2).chunk(2, dim=1)
        kg, vg = kg.reshape(b, h, dh, -1), vg.reshape(b, h, dh, -1).transpose(-1, -2)

        outs: list[torch.Tensor] = []
        kept: list[tuple[torch.Tensor, list[int]]] = []
        for lq in range(self.levels):
            _, _, hq, wq = qs[lq].shape
            q = qs[lq].view(b, h, dh, hq, wq)
            scores, sizes = [], []
            # Layout of every score block: (B, h, H_q, W_q, keys), so that the joint
            # softmax normalises over the last (contiguous) axis.
            for lk in range(lq, self.levels):
                r = 2 ** (lk - lq)
                hk, wk = hq // r, wq // r
                mask = _window_mask(hk, wk, w, q)  # (w2, H_k, W_k)
                if r == 1:  # same level: one w x w window per query
                    s = (q.unsqueeze(3) * ks[lk]).sum(2)
                    s = s.masked_fill(~mask, float("-inf")).permute(0, 1, 3, 4, 2)
                else:  # coarser level: the r x r queries sharing an ancestor share its window
                    qg = _group(q, r)  # (B, h, H_k, W_k, r*r, dh)
                    kw = ks[lk].permute(0, 1, 4, 5, 2, 3)  # (B, h, H_k, W_k, dh, w2)
                    s = torch.matmul(qg, kw).masked_fill(~mask.permute(1, 2, 0)[:, :, None], float("-inf"))
                    s = _ungroup(s, r)
                scores.append(s + self.rel_bias[lq, lk].view(1, h, 1, 1, w2))
                sizes.append(w2)
            sg = torch.matmul(q.flatten(3).transpose(-1, -2), kg).view(b, h, hq, wq, -1)
            scores.append(sg + self.global_bias[lq].view(1, h, 1, 1, 1))
            sizes.append(sg.shape[-1])
            # THE joint softmax: one normalisation over every (scale, position) key.
            att = torch.softmax(torch.cat(scores, dim=-1), dim=-1)
            if keep_weights:
                kept.append((att, sizes))
            parts = att.split(sizes, dim=-1)
            out = torch.matmul(parts[-1].reshape(b, h, hq * wq, -1), vg).view(b, h, hq, wq, dh)
            for i, lk in enumerate(range(lq, self.levels)):
                r = 2 ** (lk - lq)
                if r == 1:
                    a = parts[i].permute(0, 1, 4, 2, 3).unsqueeze(2)  # (B, h, 1, w2, H, W)
                    out = out + (a * vs[lk]).sum(3).permute(0, 1, 3, 4, 2)
                else:
                    vw = vs[lk].permute(0, 1, 4, 5, 3, 2)  # (B, h, H_k, W_k, w2, dh)
                    out = out + _ungroup(torch.matmul(_group_last(parts[i], r), vw), r)
            out = out.permute(0, 1, 4, 2, 3).reshape(b, self.width, hq, wq)
            outs.append(self.proj[lq](out))
        return outs, kept


def _group(q: torch.Tensor, r: int) -> torch.Tensor:
    """``(B, h, dh, H, W) -> (B, h, H/r, W/r, r*r, dh)``: queries grouped by ancestor."""
    b, h, dh, hq, wq = q.shape
    g = q.view(b, h, dh, hq // r, r, wq // r, r).permute(0, 1, 3, 5, 4, 6, 2)
    return g.reshape(b, h, hq // r, wq // r, r * r, dh)


def _group_last(a: torch.Tensor, r: int) -> torch.Tensor:
    """``(B, h, H, W, c) -> (B, h, H/r, W/r, r*r, c)``."""
    b, h, hq, wq, c = a.shape
    g = a.reshape(b, h, hq // r, r, wq // r, r, c).permute(0, 1, 2, 4, 3, 5, 6)
    return g.reshape(b, h, hq // r, wq // r, r * r, c)


def _ungroup(a: torch.Tensor, r: int) -> torch.Tensor:
    """Inverse of `_group_last`: ``(B, h, H/r, W/r, r*r, c) -> (B, h, H, W, c)``."""
    b, h, hk, wk, _, c = a.shape
    return a.view(b, h, hk, wk, r, r, c).permute(0, 1, 2, 4, 3, 5, 6).reshape(b, h, hk * r, wk * r, c)
