"""`unet`: a modern U-Net of ConvNeXt blocks on the fine grid, restricted by R_k.

Architecture (after the CNextU-Net baseline of The Well, Ohana et al., NeurIPS 2024
Datasets & Benchmarks, and the modern U-Net of PDEArena, Gupta & Brandstetter 2022, with
the ConvNeXt block of Liu et al., CVPR 2022); written here from those papers:

* stem: 3x3 convolution ``C_in -> width``;
* ``levels`` encoder stages at ``width * 2**l`` channels (l = 0 .. levels-1), each
  ``blocks`` ConvNeXt blocks then a down-sampling (LayerNorm, strided 2x2 convolution
  doubling the channels); a bottleneck stage of ``blocks`` blocks at ``width * 2**levels``;
* ``levels`` decoder stages: up-sampling (LayerNorm, 2x2 transposed convolution halving the
  channels), concatenation with the encoder's skip at that level, a 1x1 convolution back to
  that level's channels, ``blocks`` ConvNeXt blocks;
* head: LayerNorm, 1x1 convolution ``width -> C_out``.

ConvNeXt block: depthwise 7x7 convolution, LayerNorm over channels, inverted-bottleneck MLP
(``4 c`` hidden, GELU), per-channel layer scale, residual. Where we differ: the layer scale
starts at 1, not ConvNeXt's 1e-6; with the suite's short budgets (10 epochs on Darcy
``small``, 160 steps) 1e-6 left the blocks near the identity: rel_l2 at k = 4 / 8 / 16 of
0.082 / 0.071 / 0.062 against 0.053 / 0.046 / 0.040 with 1 (seed 0, lr 1e-3; lr 3e-3, fno's,
gave 0.056 / 0.051 / 0.046 with 1 and 0.066 / 0.059 / 0.053 with 1e-6, so lr stays 1e-3).

Padding, from ``TaskSpec.boundary`` per axis: circular on periodic axes ("periodic": both;
"periodic-x/...": the columns), so that on a periodic task the network commutes exactly
with shifts by multiples of ``2**levels``; zeros on the other axes (Dirichlet Darcy,
convection's plates). Zero, not replicate: the features are normalised (about zero mean),
so zero padding marks where the domain ends and lets translation-equivariant convolutions
learn the wall's boundary layer (u = 0 on Darcy's boundary), which replicate padding hides.

Library use: torch only (``nn.Conv2d``, ``nn.ConvTranspose2d``, ``nn.LayerNorm``,
``F.pad``); neuraloperator has no ConvNeXt U-Net, so the blocks and the network are
written here. The fine grid must be divisible by ``2**levels`` (`UNet.not_applicable`).
Rollouts (`UNet.advance`) run the network on the prolonged coarse state, never on the
coarse grid itself, as NeuroScale does.

Defaults ``width=16, levels=3, blocks=1`` give 335,601 trainable parameters on Darcy
``small``, within 20 % of ``fno``'s 357,217 (6 % fewer): one block per stage at three
levels (a 4x4 bottleneck on the 32x32 smoke grid, 8x8 on Darcy ``small``). A fourth level
at width 16 gives 1.31M (its 256-channel bottleneck), two blocks per stage 573k; width 12
with two blocks (330k) is the deeper alternative at the same count.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from methods.layers import pad_axes, periodic_axes
from methods.neural import NeuralMethod
from nskernel import Prediction, TaskSpec
from nskernel.grid import prolong


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class PaddedConv(nn.Conv2d):
    """Stride-1 'same' convolution with circular padding on periodic axes, zeros elsewhere."""

    def __init__(self, c_in: int, c_out: int, kernel: int, periodic: tuple[bool, bool], groups: int = 1) -> None:
        super().__init__(c_in, c_out, kernel, groups=groups)
        self.periodic = periodic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_axes(x, self.kernel_size[0] // 2, self.periodic))


class ConvNeXtBlock(nn.Module):
    """x + gamma * MLP(LN(dwconv7x7(x))), the MLP ``c -> 4c -> c`` with GELU."""

    def __init__(self, c: int, periodic: tuple[bool, bool], layer_scale: float = 1.0) -> None:
        super().__init__()
        self.dwconv = PaddedConv(c, c, 7, periodic, groups=c)
        self.norm = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))
        self.gamma = nn.Parameter(torch.full((c,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).permute(0, 2, 3, 1)  # channels last for LayerNorm and the MLP
        return x + (self.gamma * self.mlp(self.norm(h))).permute(0, 3, 1, 2)


def stage(c: int, blocks: int, periodic: tuple[bool, bool]) -> nn.Sequential:
    return nn.Sequential(*(ConvNeXtBlock(c, periodic) for _ in range(blocks)))


class UNetNet(nn.Module):
    """The ConvNeXt U-Net ``(B, C_in, H, W) -> (B, C_out, H, W)`` (module docstring);
    H and W must be divisible by ``2**levels``."""

    def __init__(self, c_in: int, c_out: int, width: int, levels: int, blocks: int,
                 periodic: tuple[bool, bool] = (False, False)) -> None:
        super().__init__()
        chans = [width * 2**level for level in range(levels + 1)]
        self.stem = PaddedConv(c_in, width, 3, periodic)
        self.enc = nn.ModuleList(stage(c, blocks, periodic) for c in chans[:-1])
        self.down = nn.ModuleList(nn.Sequential(ChannelNorm(c), nn.Conv2d(c, 2 * c, 2, stride=2)) for c in chans[:-1])
        self.mid = stage(chans[-1], blocks, periodic)
        self.up = nn.ModuleList(nn.Sequential(ChannelNorm(2 * c), nn.ConvTranspose2d(2 * c, c, 2, stride=2))
                                for c in chans[:-1])
        self.fuse = nn.ModuleList(nn.Conv2d(2 * c, c, 1) for c in chans[:-1])
        self.dec = nn.ModuleList(stage(c, blocks, periodic) for c in chans[:-1])
        self.head = nn.Sequential(ChannelNorm(width), nn.Conv2d(width, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        skips = []
        for enc, down in zip(self.enc, self.down):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.mid(h)
        for level in reversed(range(len(skips))):
            h = self.up[level](h)
            h = self.dec[level](self.fuse[level](torch.cat([h, skips[level]], dim=1)))
        return self.head(h)


class UNet(NeuralMethod):
    """ConvNeXt U-Net (The Well's CNextU-Net, Ohana et al. 2024; PDEArena's modern U-Net,
    Gupta & Brandstetter 2022) mapping the fine input to the fine output; the prediction
    at k is R_k of it. ``width``: channels at the top level (doubled per level);
    ``levels``: down/up-sampling stages; ``blocks``: ConvNeXt blocks per stage.
    Defaults: 335,601 parameters on Darcy ``small`` (fno: 357,217)."""

    name = "unet"
    summary = "ConvNeXt U-Net (CNextU-Net / PDEArena) on the fine grid, restricted by R_k"

    width: int = 16
    levels: int = 3
    blocks: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def check_params(self) -> None:
        super().check_params()
        self.check_positive_ints("width", "levels", "blocks")

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if (reason := super().not_applicable(spec)) is not None:  # the augment mode (NeuralMethod)
            return reason
        stride = 2**self.levels
        h, w = spec.fine_shape
        if h % stride or w % stride:
            return f"fine grid {h}x{w} is not divisible by 2**levels = {stride} (levels={self.levels})"
        return None

    def build_model(self, spec: TaskSpec) -> nn.Module:
        return UNetNet(spec.in_channels, spec.out_channels, self.width, self.levels, self.blocks,
                       periodic_axes(spec.boundary))

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"data": self.data_loss(self.model(x), ys)}

    def advance(self, state: np.ndarray, k: int) -> Prediction:
        """Rollout step: the coarse state, prolonged piecewise-constantly to the fine grid,
        is the fine input; the prediction at ``k`` is the next coarse state. Unlike a
        Fourier operator, a CNN's kernels are sizes in grid cells: on the coarse grid they
        would span k times the physical extent they were trained on (and a coarse grid
        such as 5x5 is not divisible by ``2**levels``)."""
        if not self._spec.time_dependent:
            return super().advance(state, k)
        with self.rollout_mode():
            return self.predict(prolong(np.asarray(state), k), k)


__all__ = ["UNet", "UNetNet", "ConvNeXtBlock"]
