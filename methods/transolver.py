"""`transolver`: a transformer neural operator whose cost is linear in the number of grid
points, after Transolver (Wu, Luo, Wang, Wang & Long, "Transolver: A Fast Transformer
Solver for PDEs on General Geometries", ICML 2024).

Architecture (the network maps the normalised fine input to the fine grid; the prediction
at k is ``R_k`` of it, as for every `NeuralMethod`):

* per point, the input channels and cell-centre coordinate features (``cos``/``sin`` of
  the angle on a periodic axis, ``2t - 1`` on a bounded one, ``t`` in ``[0, 1]``) are
  lifted by a two-layer GELU MLP to ``width`` channels;
* ``layers`` pre-norm blocks ``h += PhysicsAttention(LN(h)); h += MLP(LN(h))``. Physics
  attention (paper, eq. 1-4): per head, every point is softly assigned to ``slices``
  learned slices (softmax over slices of a linear map of its features, divided by a
  learned per-head temperature); each slice token is the assignment-weighted mean of the
  point features; the ``slices`` tokens attend to one another (scaled dot-product
  attention); each point receives the assignment-weighted sum of the updated tokens.
  As in the paper's variant for structured meshes, the two projections that feed the
  assignment and the tokens are ``kernel x kernel`` convolutions (``kernel=1``: the
  pointwise projections of its general-mesh model); they pad periodically on periodic
  axes and with zeros on bounded ones;
* a LayerNorm and a pointwise linear projection to the output channels.

Cost: O(N width (width kernel^2 + slices + mlp_ratio width)) per sample and block; no
tensor has more than a constant times N elements (tests/test_transolver.py checks it).
Our own code, in plain torch (LayerNorm, convolutions, ``scaled_dot_product_attention``); neither
neuraloperator nor torch has physics attention. Differences from the paper: no unified
position encoding (the coordinate features above instead), no dropout, the shared
training loop of the suite (AdamW, cosine decay) instead of its OneCycle schedule.

The coordinate features are absolute positions, so on a periodic task the network is not
exactly equivariant to periodic shifts; everything after the feature concatenation is
(tested). Defaults (``width=64, layers=4, heads=4, slices=32, mlp_ratio=2, kernel=3``):
393,617 trainable parameters on Darcy ``small``, +10.2 % of `fno`'s 357,217.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.layers import pad_axes, periodic_axes
from methods.neural import NeuralMethod
from nskernel import TaskSpec


def coordinate_features(shape: tuple[int, int], periodic: tuple[bool, bool], like: torch.Tensor) -> torch.Tensor:
    """Cell-centre features ``(E, H, W)``: per axis ``(cos, sin)`` of ``2 pi t`` if periodic,
    else ``2t - 1``, with ``t = (i + 1/2) / n`` (the same physical point at every grid)."""
    feats = []
    for axis, (n, per) in enumerate(zip(shape, periodic)):
        t = (torch.arange(n, dtype=like.dtype, device=like.device) + 0.5) / n
        ts = [torch.cos(2 * math.pi * t), torch.sin(2 * math.pi * t)] if per else [2 * t - 1]
        for f in ts:
            feats.append(f.view(-1, 1).expand(shape) if axis == 0 else f.view(1, -1).expand(shape))
    return torch.stack(feats)


class GridConv(nn.Module):
    """``kernel x kernel`` convolution of point tokens ``(B, N, C)`` on an ``H x W`` grid,
    padded periodically on periodic axes and with zeros on the others."""

    def __init__(self, c_in: int, c_out: int, kernel: int, periodic: tuple[bool, bool]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel)
        self.pad, self.periodic = kernel // 2, periodic

    def forward(self, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        if self.pad == 0:
            return F.linear(x, self.conv.weight.flatten(1), self.conv.bias)
        g = pad_axes(x.transpose(1, 2).reshape(b, c, *shape), self.pad, self.periodic)
        return self.conv(g).flatten(2).transpose(1, 2)


class PhysicsAttention(nn.Module):
    """Slice -> attend among slice tokens -> deslice (Wu et al. 2024, eq. 1-4)."""

    def __init__(self, width: int, heads: int, slices: int, kernel: int, periodic: tuple[bool, bool]) -> None:
        super().__init__()
        self.heads, self.d = heads, width // heads
        self.proj_assign = GridConv(width, width, kernel, periodic)  # features that choose the slice
        self.proj_value = GridConv(width, width, kernel, periodic)  # features that the slices average
        self.to_slices = nn.Linear(self.d, slices)
        self.temperature = nn.Parameter(torch.full((1, heads, 1, 1), 0.5))
        self.q, self.k, self.v = (nn.Linear(self.d, self.d, bias=False) for _ in range(3))
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        b, n, _ = x.shape
        split = (b, n, self.heads, self.d)
        a = self.proj_assign(x, shape).view(split).transpose(1, 2)  # (B, h, N, d)
        f = self.proj_value(x, shape).view(split).transpose(1, 2)
        w = torch.softmax(self.to_slices(a) / self.temperature.clamp_min(1e-3), dim=-1)  # (B, h, N, M)
        tokens = (w.transpose(-1, -2) @ f) / (w.sum(dim=2).unsqueeze(-1) + 1e-5)  # (B, h, M, d)
        tokens = F.scaled_dot_product_attention(self.q(tokens), self.k(tokens), self.v(tokens))
        y = (w @ tokens).transpose(1, 2).reshape(b, n, -1)  # (B, N, width)
        return self.out(y)


class Block(nn.Module):
    """Pre-norm transformer block: physics attention and a GELU MLP, both residual."""

    def __init__(self, width: int, heads: int, slices: int, hidden: int, kernel: int,
                 periodic: tuple[bool, bool]) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = PhysicsAttention(width, heads, slices, kernel, periodic)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, h: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        h = h + self.attn(self.norm1(h), shape)
        return h + self.mlp(self.norm2(h))


class TransolverNet(nn.Module):
    """``(B, C_in, H, W) -> (B, C_out, H, W)`` on any grid. `trunk` is everything after the
    coordinate features are appended (periodic-shift equivariant on periodic axes)."""

    def __init__(self, c_in: int, c_out: int, periodic: tuple[bool, bool], width: int, layers: int, heads: int,
                 slices: int, mlp_ratio: float, kernel: int) -> None:
        super().__init__()
        self.periodic = periodic
        n_coords = sum(2 if p else 1 for p in periodic)
        hidden = max(1, round(width * mlp_ratio))
        self.lift = nn.Sequential(nn.Linear(c_in + n_coords, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.blocks = nn.ModuleList(Block(width, heads, slices, hidden, kernel, periodic) for _ in range(layers))
        self.norm, self.proj = nn.LayerNorm(width), nn.Linear(width, c_out)

    def trunk(self, z: torch.Tensor) -> torch.Tensor:
        """The network on input + coordinate channels ``(B, C_in + E, H, W)``."""
        b, _, hgt, wid = z.shape
        h = self.lift(z.flatten(2).transpose(1, 2))  # point tokens (B, N, width)
        for block in self.blocks:
            h = block(h, (hgt, wid))
        return self.proj(self.norm(h)).transpose(1, 2).reshape(b, -1, hgt, wid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coords = coordinate_features(tuple(x.shape[-2:]), self.periodic, x)
        return self.trunk(torch.cat([x, coords.expand(x.shape[0], -1, -1, -1)], dim=1))


class Transolver(NeuralMethod):
    """Transolver physics-attention transformer on the fine grid, restricted by ``R_k``.
    ``width`` channels (divisible by ``heads``), ``layers`` blocks, ``heads`` attention
    heads, ``slices`` slice tokens per head, MLP hidden size ``mlp_ratio * width``,
    ``kernel`` the (odd) size of the slice projections' convolutions."""

    name = "transolver"
    summary = "Transolver physics attention (linear in grid points) on the fine grid, restricted by R_k"

    width: int = 64
    layers: int = 4
    heads: int = 4
    slices: int = 32
    mlp_ratio: float = 2.0
    kernel: int = 3
    lr: float = 1e-3

    def check_params(self) -> None:
        super().check_params()
        self.check_positive_ints("width", "layers", "heads", "slices", "kernel")
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads})")
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {self.kernel}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        return TransolverNet(spec.in_channels, spec.out_channels, periodic_axes(spec.boundary), self.width,
                             self.layers, self.heads, self.slices, self.mlp_ratio, self.kernel)

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"data": self.data_loss(self.model(x), ys)}


__all__ = ["Transolver", "TransolverNet", "PhysicsAttention", "coordinate_features"]
