"""The NeuroScale network: Fourier-feature lift, multiscale hierarchy, cross-scale
attention blocks and a synthesis that serves every coarse-graining factor k.

Data flow for a fine input ``x`` of shape ``(B, C_in, H, W)``:

1. Lift (fine grid): ``g = GELU(conv3x3(x) + F gamma(coords))``, ``width`` channels,
   where ``gamma`` are sin/cos Fourier features of the cell centres (frequencies 0.5, 1,
   2, ... per unit length) so that the network can place high-frequency structure.
2. Hierarchy: ``U^(l) = W_lift R_{s 2^l} g + e_l`` for ``l = 0..L`` (``s = stem``, ``R``
   the conservative block average of `nskernel.grid.restrict`, ``e_l`` a level embedding).
   Averaging *nonlinear* local features is a learned family of cell averages
   (arithmetic, harmonic-like, interface density, orientation), the homogenisation-style
   statistics a coarse model of a rough coefficient needs.
3. ``layers`` blocks of `CrossScaleAttention` (joint softmax over scales), in parallel
   with it (``spectral_modes > 0``) a depthwise Fourier filter on every level (global
   mixing at each level's own resolution, the lowest ``spectral_modes`` modes per axis:
   neuraloperator's separable `SpectralConv`), plus a pointwise MLP, each followed by a
   bottom-up pass ``U^(l) += B_l R_2 U^(l-1)`` that carries the
   updated finer levels to the coarser ones.
4. Synthesis: ``U~ = sum_l P_{s 2^l} U^(l)`` (P = piecewise-constant prolongation, the
   sum over l of the proposal's formula) plus the fine lift features, then a pointwise
   head gives a field ``u`` on the fine grid. The prediction at ANY factor k is
   ``R_k u``: consistent across factors (``R_16 u = R_2 R_8 u``), so an unseen k needs
   no extrapolation of the mean. The variance head (`uncertainty.VarianceHead`) is the
   only part that takes k as an input.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from methods.dropout import FastDropout
from methods.neuroscale.attention import ChannelNorm, CrossScaleAttention
from methods.neuroscale.uncertainty import VarianceHead
from nskernel.grid import prolong, restrict


def fourier_features(h: int, w: int, n_freq: int, like: torch.Tensor) -> torch.Tensor:
    """``(1, 4 n_freq, H, W)``: sin/cos of ``2 pi f x`` and ``2 pi f y`` at the cell
    centres of the unit square, ``f = 0.5, 1, 2, ...`` (f = 0.5 gives the half-wave that
    vanishes on both walls, the natural mode of Dirichlet problems)."""
    ys = (torch.arange(h, dtype=like.dtype, device=like.device) + 0.5) / h
    xs = (torch.arange(w, dtype=like.dtype, device=like.device) + 0.5) / w
    feats = []
    for j in range(n_freq):
        f = math.pi * 2**j  # 2 pi * (0.5 * 2^j)
        for fn in (torch.sin, torch.cos):
            feats.append(fn(f * ys)[:, None].expand(h, w))
            feats.append(fn(f * xs)[None, :].expand(h, w))
    return torch.stack(feats)[None] if feats else like.new_zeros(1, 0, h, w)


class Block(nn.Module):
    """Pre-norm residual block: cross-scale attention, pointwise MLP, bottom-up pass."""

    def __init__(self, width: int, heads: int, levels: int, window: int, global_tokens: int, dropout: float,
                 spectral_modes: int = 0) -> None:
        super().__init__()
        self.norm1 = nn.ModuleList(ChannelNorm(width) for _ in range(levels))
        self.norm2 = nn.ModuleList(ChannelNorm(width) for _ in range(levels))
        self.attn = CrossScaleAttention(width, heads, levels, window, global_tokens)
        # Depthwise (separable) filters: width * modes^2 complex weights per level, the
        # channel mixing is the MLP's. A level smaller than the modes keeps all of its own.
        self.spectral = nn.ModuleList()
        if spectral_modes > 0:
            # heavy import (neuraloperator pulls in its training stack): only when used
            from neuralop.layers.spectral_convolution import SpectralConv

            self.spectral.extend(
                SpectralConv(width, width, n_modes=(spectral_modes, spectral_modes), separable=True)
                for _ in range(levels)
            )
        self.mlp = nn.Sequential(nn.Conv2d(width, 2 * width, 1), nn.GELU(), nn.Conv2d(2 * width, width, 1))
        self.up = nn.ModuleList(nn.Conv2d(width, width, 1, bias=False) for _ in range(levels - 1))
        for conv in self.up:  # start as the identity map of the hierarchy
            nn.init.zeros_(conv.weight)
        self.drop = FastDropout(dropout)  # nn.Dropout with a cheaper CPU mask

    def forward(self, us: list[torch.Tensor]) -> list[torch.Tensor]:
        normed = [n(u) for n, u in zip(self.norm1, us)]
        zs = self.attn(normed)
        if len(self.spectral):  # global mixing at every level, beside the attention
            zs = [z + mix(v) for z, mix, v in zip(zs, self.spectral, normed)]
        us = [u + self.drop(z) for u, z in zip(us, zs)]
        us = [u + self.drop(self.mlp(n(u))) for n, u in zip(self.norm2, us)]
        out = [us[0]]
        for lvl in range(1, len(us)):
            out.append(us[lvl] + self.up[lvl - 1](restrict(out[-1], 2)))
        return out


class NeuroScaleNet(nn.Module):
    """Fine input ``(B, C_in, H, W)`` -> fine field ``(B, C_out, H, W)`` and fine
    features ``(B, width, H, W)`` for the variance head (normalised units)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        width: int,
        heads: int,
        window: int,
        scales: int,
        layers: int,
        stem: int,
        fourier: int,
        global_tokens: int,
        dropout: float,
        variance: bool,
        log2k_centre: float,
        periodic: bool = False,
        spectral_modes: int = 0,
    ) -> None:
        super().__init__()
        self.scales, self.stem, self.fourier = scales, stem, fourier
        # Lift = conv2(GELU(conv1(x) + F gamma)). conv2 is linear, so it commutes with
        # the block averages and runs on the coarse levels; only conv1 and GELU run on
        # the fine grid, and F gamma (the same for every sample) is computed once.
        # A 3x3 stencil, not a pointwise map: block averages of nonlinear functions of
        # local differences encode interface density and orientation inside a block
        # (what effective coefficients depend on), not only volume fractions.
        self.lift_in = nn.Conv2d(in_channels, width, 3, padding=1, padding_mode="circular" if periodic else "replicate")
        self.lift_ff = nn.Conv2d(4 * fourier, width, 1, bias=False) if fourier else None
        self.lift_out = nn.Conv2d(width, width, 1)
        self.level_embed = nn.Parameter(torch.zeros(scales, width, 1, 1))
        self.blocks = nn.ModuleList(
            Block(width, heads, scales, window, global_tokens, dropout, spectral_modes) for _ in range(layers)
        )
        self.out_norm = ChannelNorm(width)
        self.out_proj = nn.Conv2d(width, width, 1)
        self.head = nn.Sequential(nn.GELU(), nn.Conv2d(width, out_channels, 1))
        self.var_head = VarianceHead(width, out_channels, log2k_centre) if variance else None

    @property
    def factor(self) -> int:
        """The grid must be divisible by this: the coarsest level's block size."""
        return self.stem * 2 ** (self.scales - 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        if h % self.factor or w % self.factor:
            raise ValueError(f"grid {h}x{w} is not divisible by stem*2^(scales-1) = {self.factor}")
        pre = self.lift_in(x)
        if self.lift_ff is not None:
            pre = pre + self.lift_ff(fourier_features(h, w, self.fourier, x))
        g = torch.nn.functional.gelu(pre)  # fine pointwise features
        avgs = [restrict(g, self.stem)]
        for _ in range(1, self.scales):
            avgs.append(restrict(avgs[-1], 2))  # R_{2s} = R_2 R_s: build coarse from fine
        us = [self.lift_out(a) + self.level_embed[lvl] for lvl, a in enumerate(avgs)]
        for block in self.blocks:
            us = block(us)
        # Sum over levels, coarse to fine: acc_l = U^(l) + P_2 acc_{l+1}. The channel norm
        # is pointwise, so it commutes with P and is applied before the last prolongation.
        acc = us[-1]
        for lvl in range(self.scales - 2, -1, -1):
            acc = us[lvl] + prolong(acc, 2)
        # The fine skip is g itself: no fine-grid matrix product besides lift_in and head.
        feats = prolong(self.out_proj(self.out_norm(acc)), self.stem) + g
        return self.head(feats), feats

    def predict(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mean ``R_k u`` and log-variance at factor ``k`` (None without a variance head),
        both normalised."""
        return self.predict_many(x, (k,))[k]

    def predict_many(
        self, x: torch.Tensor, ks: tuple[int, ...]
    ) -> dict[int, tuple[torch.Tensor, torch.Tensor | None]]:
        """`predict` at every factor in ``ks`` from one pass of the network."""
        u, feats = self(x)
        out = {}
        for k in ks:
            logvar = None if self.var_head is None else self.var_head(restrict(feats, k), k)
            out[k] = restrict(u, k), logvar
        return out
