"""`gfno`: group-equivariant Fourier neural operator (Helwig, Zhang, Fu, Kurtin, Wojtowytsch
& Ji, "Group Equivariant Fourier Neural Operators for Partial Differential Equations",
ICML 2023), written in plain torch (`methods.gfno_layers`).

The group is read from ``spec.symmetry`` ("p4m", "p4", "p2", "flip_x"; "none" -> n/a) and
the channels' parities from ``spec.in_parity`` / ``spec.out_parity`` (+1 scalar, -1 for a
pseudoscalar or the reflected component of a vector). Architecture (Li et al. 2021 FNO
layout): sign-expanded input -> regular lifting MLP -> ``n_layers`` x GELU(spectral group
conv + pointwise group conv) -> group-pooled projection MLP, on the fine grid; the
prediction at k is ``R_k`` of it, as for `fno` (``R_k`` commutes with the group).

Where this differs from the paper: (1) the kept modes are a symmetric box with the
kernel Hermitian-symmetrised (exact real operator; G-FNO uses the same idea);
(2) padding on non-periodic axes is zero padding on both sides; (3) instead of FNO's
(x, y) grid channels, which break equivariance, the lifting sees group-invariant
coordinates of the non-periodic axes (distance from the centre and to the nearest wall
under rotations; the vertical coordinate under ``flip_x``); (4) ``width=None`` matches the
parameter count of `fno` with its default parameters on the task by choosing the width
(modes stay those of `fno`), as the issue asks.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from methods.fno_family.base import FourierOperator
from methods.fno_family.fno import FNO
from methods.fno_family.gfno_layers import (
    GROUP_NAMES,
    Group,
    GroupPointwise,
    GroupSpectralConv,
    crop,
    make_group,
    pad,
    signs,
)
from methods.layers import periodic_axes
from nskernel import TaskSpec


def invariant_coords(group: Group, shape: tuple[int, int], periodic: tuple[bool, bool]) -> torch.Tensor:
    """Group-invariant position channels ``(E, H, W)`` on the non-periodic axes."""
    h, w = shape
    y = (np.arange(h) + 0.5) / h - 0.5
    x = (np.arange(w) + 0.5) / w - 0.5
    yy, xx = np.meshgrid(y, x, indexing="ij")
    chans: list[np.ndarray] = []
    if group.rotates or group.name == "p2":
        if not any(periodic):  # a box: radius and closeness to the walls are invariant
            chans = [4 * (yy**2 + xx**2), 2 * np.maximum(np.abs(yy), np.abs(xx))]
    else:  # flip_x: y is invariant, |x| too
        if not periodic[0]:
            chans.append(2 * yy)
        if not periodic[1]:
            chans.append(2 * np.abs(xx))
    return torch.as_tensor(np.stack(chans) if chans else np.zeros((0, h, w)), dtype=torch.float32)


class GFNONet(torch.nn.Module):
    """The equivariant network ``(B, C_in, H, W) -> (B, C_out, H, W)``."""

    def __init__(self, group: Group, in_parity: tuple[int, ...], out_parity: tuple[int, ...],
                 width: int, modes: tuple[int, int], n_layers: int, padding: tuple[float, float],
                 coords: torch.Tensor) -> None:
        super().__init__()
        self.group, self.padding = group, padding
        n_in = len(in_parity) + coords.shape[0]
        self.register_buffer("in_signs", signs(group, in_parity).float(), persistent=False)
        self.register_buffer("out_signs", signs(group, out_parity).float(), persistent=False)
        self.register_buffer("coords", coords, persistent=False)
        self.lift = torch.nn.ModuleList([GroupPointwise(group, n_in, 2 * width),
                                         GroupPointwise(group, 2 * width, width)])
        self.spectral = torch.nn.ModuleList(GroupSpectralConv(group, width, width, *modes) for _ in range(n_layers))
        self.pointwise = torch.nn.ModuleList(GroupPointwise(group, width, width) for _ in range(n_layers))
        self.proj = GroupPointwise(group, width, 2 * width)
        self.out = torch.nn.Linear(2 * width, len(out_parity))
        # A constant offset of an odd channel would break equivariance.
        self.register_buffer("out_even", (torch.tensor(out_parity) > 0).float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = self.group.order
        f = x.unsqueeze(2) * self.in_signs.to(x.dtype).view(1, -1, n, 1, 1)  # (B, C, |G|, H, W)
        if self.coords.shape[0]:
            c = self.coords.to(x.dtype)
            if c.shape[-2:] != (h, w):  # another grid (coarse rollout input): resample
                c = torch.nn.functional.interpolate(c[None], size=(h, w), mode="bilinear", align_corners=False)[0]
            f = torch.cat([f, c.view(1, -1, 1, h, w).expand(b, -1, n, h, w)], dim=1)
        f = self.lift[1](torch.nn.functional.gelu(self.lift[0](f)))
        # Padding is a fraction of the grid, so a coarse input is padded alike.
        py, px = math.ceil(self.padding[0] * h / 2), math.ceil(self.padding[1] * w / 2)
        f = pad(f, py, px)
        for i, (spec, point) in enumerate(zip(self.spectral, self.pointwise)):
            f = spec(f) + point(f)
            if i < len(self.spectral) - 1:
                f = torch.nn.functional.gelu(f)
        f = crop(f, py, px)
        f = torch.nn.functional.gelu(self.proj(f))  # (B, P, |G|, H, W)
        pooled = torch.einsum("bpghw,cg->bcphw", f, self.out_signs.to(f.dtype)) / n
        y = torch.einsum("bcphw,cp->bchw", pooled, self.out.weight)
        return y + (self.out.bias * self.out_even.to(y.dtype)).view(1, -1, 1, 1)


class GFNO(FourierOperator):
    name = "gfno"
    summary = "group-equivariant FNO (Helwig et al. 2023), group from spec.symmetry"

    #: None: the width whose parameter count matches `fno`'s default on the task
    width: int | None = None  # type: ignore[assignment]

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if (reason := super().not_applicable(spec)) is not None:  # the augment mode (NeuralMethod)
            return reason
        if spec.symmetry == "none":
            return f"task {spec.name} declares no symmetry group (spec.symmetry = 'none')"
        if spec.symmetry not in GROUP_NAMES:
            return f"symmetry {spec.symmetry!r} is not implemented (have: {', '.join(GROUP_NAMES)})"
        group = make_group(spec.symmetry)
        h, w = spec.fine_shape
        if group.rotates and h != w:
            return f"rotations need a square grid, task {spec.name} has {h}x{w}"
        return None

    @staticmethod
    def parities(spec: TaskSpec) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Channel parities from the spec (all +1 where the task declares none)."""
        pin = tuple(spec.in_parity) or (1,) * spec.in_channels
        pout = tuple(spec.out_parity) or (1,) * spec.out_channels
        if len(pin) != spec.in_channels or len(pout) != spec.out_channels:
            raise ValueError(f"task {spec.name}: parity tuples do not match the channel counts")
        return pin, pout

    def _net(self, spec: TaskSpec, width: int) -> GFNONet:
        group = make_group(spec.symmetry)
        h, w = spec.fine_shape
        m = self.n_modes // 2
        py_per, px_per = periodic_axes(spec.boundary)
        pad_frac = (0.0 if py_per else self.padding, 0.0 if px_per else self.padding)
        # Modes beyond what the grid resolves are clipped (also at run time, per grid).
        modes = (min(m, h // 2 - 1), min(m, w // 2 - 1))
        if group.rotates:
            modes = (min(modes), min(modes))
        pin, pout = self.parities(spec)
        coords = invariant_coords(group, spec.fine_shape, (py_per, px_per))
        return GFNONet(group, pin, pout, width, modes, self.n_layers, pad_frac, coords)

    def matched_width(self, spec: TaskSpec) -> int:
        """The width whose parameter count is closest to `fno`'s default on ``spec``."""
        target = sum(p.numel() for p in FNO().build_model(spec).parameters())
        counts: dict[int, int] = {}
        for c in range(2, 129):  # the count grows with the width: stop past the target
            counts[c] = sum(p.numel() for p in self._net(spec, c).parameters())
            if counts[c] > target:
                break
        return min(counts, key=lambda c: abs(counts[c] - target))

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):  # counting builds throwaway models
            width = self.width or self.matched_width(spec)
        self.width_ = width
        pin, pout = self.parities(spec)
        # Encoding must commute with the group: odd channels keep their sign, so no shift.
        self._x_mean = self._x_mean * torch.tensor([p > 0 for p in pin], dtype=self._x_mean.dtype,
                                                    device=self._x_mean.device).view(1, -1, 1, 1)
        self._y_mean = self._y_mean * torch.tensor([p > 0 for p in pout], dtype=self._y_mean.dtype,
                                                    device=self._y_mean.device).view(1, -1, 1, 1)
        return self._net(spec, width)

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"data": self.data_loss(self.model(x), ys)}

    def diagnostics(self) -> dict:
        return {**super().diagnostics(), "width": self.width_}


__all__ = ["GFNO", "GFNONet", "periodic_axes", "invariant_coords"]
