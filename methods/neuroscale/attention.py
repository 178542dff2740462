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


def _expand(t: torch.Tensor, r: int) -> torch.Tensor:
    """Broadcast a coarse ``(..., Hc, Wc)`` tensor to the ``r``-times finer grid as a
    view ``(..., Hc, 1, Wc, 1)``; every fine cell shares its ancestor's value."""
    return t.unsqueeze(-1).unsqueeze(-3) if r > 1 else t


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
        """Attention weights per query level: ``(B, heads, n_keys, H_l, W_l)`` and the
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
        scale = 1.0 / math.sqrt(dh)
        qs, ks, vs = [], [], []
        for lvl, u in enumerate(us):
            q, k, v = self.qkv[lvl](u).chunk(3, dim=1)
            qs.append(q * scale)
            ks.append(_windows(k, h, w))
            vs.append(_windows(v, h, w))
        # Global tokens: the coarsest level pooled to a fixed G x G grid (O(1) tokens).
        coarse = us[-1]
        g = self._global_grid((coarse.shape[-2], coarse.shape[-1]))
        kg, vg = self.kv_global(F.adaptive_avg_pool2d(coarse, g)).flatten(2).chunk(2, dim=1)
        b = coarse.shape[0]
        kg = kg.reshape(b, h, dh, -1)
        vg = vg.reshape(b, h, dh, -1)

        outs: list[torch.Tensor] = []
        kept: list[tuple[torch.Tensor, list[int]]] = []
        for lq in range(self.levels):
            q = qs[lq]
            _, _, hq, wq = q.shape
            qh = q.view(b, h, dh, hq, wq)
            scores, sizes = [], []
            for lk in range(lq, self.levels):
                r = 2 ** (lk - lq)
                hk, wk = hq // r, wq // r
                # Query cells grouped by their ancestor at level lk: (.., Hk, r, Wk, r).
                qg = qh.view(b, h, dh, 1, hk, r, wk, r) if r > 1 else qh.unsqueeze(3)
                kw = _expand(ks[lk], r)
                s = (qg * kw).sum(2)  # (B, h, w*w, Hk, r, Wk, r)
                s = s + self.rel_bias[lq, lk].view(1, h, w * w, *([1] * (s.dim() - 3)))
                mask = _expand(_window_mask(hk, wk, w, q), r)
                s = s.masked_fill(~mask, float("-inf")).reshape(b, h, w * w, hq, wq)
                scores.append(s)
                sizes.append(w * w)
            sg = torch.einsum("bhdyx,bhdg->bhgyx", qh, kg) + self.global_bias[lq].view(1, h, 1, 1, 1)
            scores.append(sg)
            sizes.append(sg.shape[2])
            # THE joint softmax: one normalisation over every (scale, position) key.
            att = torch.softmax(torch.cat(scores, dim=2), dim=2)
            if keep_weights:
                kept.append((att, sizes))
            parts = att.split(sizes, dim=2)
            out = torch.einsum("bhgyx,bhdg->bhdyx", parts[-1], vg)
            for i, lk in enumerate(range(lq, self.levels)):
                r = 2 ** (lk - lq)
                hk, wk = hq // r, wq // r
                a = parts[i].view(b, h, 1, w * w, hk, r, wk, r) if r > 1 else parts[i].unsqueeze(2)
                out = out + (a * _expand(vs[lk], r)).sum(3).reshape(b, h, dh, hq, wq)
            outs.append(self.proj[lq](out.reshape(b, self.width, hq, wq)))
        return outs, kept
