"""Group-equivariant Fourier layers for `gfno` (after Helwig et al. 2023, G-FNO).

The groups and their action on fields are `methods.groups` (re-exported here).

Hidden features use the regular representation: ``(B, C, |G|, H, W)`` with
``(g f)(p, h) = f(A_g^{-1} p, g^{-1} h)``. A group convolution with a spectral kernel
``W[o, i, g](xi)`` is, per Fourier mode,

    out[o, h](xi) = sum_{i, g} W[o, i, h^-1 g](A_h^-1 xi) F[i, g](xi),

which is equivariant because a circular convolution commutes with translations and the
DFT of ``k(A^-1 p)`` is ``K(A^-1 xi)`` for orthogonal ``A``. Kept modes form the
symmetric box ``|xi_y| <= My, |xi_x| <= Mx`` (Nyquist excluded), which every group element
maps to itself; kernels are Hermitian-symmetrised so that the layer is a real operator.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from methods.groups import GROUP_NAMES, Group, act, make_group, signs, transform


class GroupPointwise(torch.nn.Module):
    """1x1 group convolution regular -> regular: ``out[o, h] = sum w[o, i, h^-1 g] f[i, g]``;
    bias per output channel (constant over the group, hence invariant)."""

    def __init__(self, group: Group, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__()
        self.group = group
        self.register_buffer("table", torch.as_tensor(group.table()), persistent=False)
        self.weight = torch.nn.Parameter(torch.randn(c_out, c_in, group.order) / np.sqrt(c_in * group.order))
        self.bias = torch.nn.Parameter(torch.zeros(c_out)) if bias else None

    def kernel(self) -> torch.Tensor:
        """``(C_out, |G|, C_in, |G|)`` expanded matrix."""
        k = self.weight[:, :, self.table]  # (o, i, h, g)
        return k.permute(0, 2, 1, 3)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, c, n, h, w = f.shape
        k = self.kernel().reshape(-1, c * n)
        out = torch.matmul(k, f.reshape(b, c * n, h * w)).reshape(b, -1, n, h, w)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1, 1)
        return out


class GroupSpectralConv(torch.nn.Module):
    """Spectral group convolution regular -> regular on the mode box ``|xi_y| <= my``,
    ``|xi_x| <= mx``; modes are clipped at run time to what the grid resolves (a
    symmetric clip keeps the layer equivariant)."""

    def __init__(self, group: Group, c_in: int, c_out: int, my: int, mx: int) -> None:
        super().__init__()
        if group.rotates and my != mx:
            raise ValueError("a group with rotations needs as many modes in y as in x")
        self.group, self.my, self.mx = group, my, mx
        self.register_buffer("table", torch.as_tensor(group.table()), persistent=False)
        scale = 1.0 / (c_in * group.order)
        # Half plane xi_x >= 0 (rfft); the other half follows by Hermitian symmetry.
        shape = (c_out, c_in, group.order, 2 * my + 1, mx + 1)
        self.weight = torch.nn.Parameter(scale * torch.randn(shape, dtype=torch.cfloat))

    def full_kernel(self) -> torch.Tensor:
        """Hermitian kernel on the whole box ``(o, i, g, 2my+1, 2mx+1)``."""
        w = self.weight
        mirror = torch.conj(torch.flip(w[..., 1:], dims=(-2, -1)))  # xi_x < 0: conj W(-xi)
        full = torch.cat([mirror, w], dim=-1)
        return 0.5 * (full + torch.conj(torch.flip(full, dims=(-2, -1))))

    def kernel(self, my: int, mx: int) -> torch.Tensor:
        """Expanded ``(o, h, i, g, 2my+1, mx+1)`` kernel ``W[o, i, h^-1 g](A_h^-1 xi)``
        on the clipped box, half plane only."""
        full = self.full_kernel()
        full = full[..., self.my - my : self.my + my + 1, self.mx - mx : self.mx + mx + 1]
        per_h = [act(full[:, :, self.table[h]], self.group, h) for h in range(self.group.order)]
        k = torch.stack(per_h, dim=1)  # (o, h, i, g, ky, kx)
        return k[..., mx:]

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, c, n, h, w = f.shape
        my, mx = min(self.my, h // 2 - 1), min(self.mx, w // 2 - 1)
        if self.group.rotates:
            my = mx = min(my, mx)
        if my < 0 or mx < 0:
            return torch.zeros(b, self.weight.shape[0], n, h, w, dtype=f.dtype, device=f.device)
        k = self.kernel(my, mx).reshape(self.weight.shape[0] * n, c * n, 2 * my + 1, mx + 1)
        ft = torch.fft.rfft2(f.reshape(b, c * n, h, w))
        rows = torch.arange(-my, my + 1, device=f.device) % h
        y = _mode_matmul(ft[:, :, rows, : mx + 1], k.to(ft.dtype))
        out = torch.zeros(b, k.shape[0], h, w // 2 + 1, dtype=ft.dtype, device=f.device)
        out[:, :, rows, : mx + 1] = y
        return torch.fft.irfft2(out, s=(h, w)).reshape(b, -1, n, h, w)


def _mode_matmul(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``einsum("bixy,oixy->boxy")`` as one real batched GEMM over the modes: complex
    einsum on CPU is ~2.5x slower (measured, docs/baselines.md)."""
    b, i, my, mx = x.shape
    o = k.shape[0]
    xm = x.reshape(b, i, -1).permute(2, 0, 1)  # (modes, b, i)
    km = k.reshape(o, i, -1).permute(2, 1, 0)  # (modes, i, o)
    xin = torch.cat([xm.real, xm.imag], dim=2)
    big = torch.cat([torch.cat([km.real, km.imag], dim=2), torch.cat([-km.imag, km.real], dim=2)], dim=1)
    y = torch.bmm(xin, big)  # (modes, b, 2o): [real | imag]
    return torch.complex(y[..., :o], y[..., o:]).permute(1, 2, 0).reshape(b, o, my, mx)


def pad(f: torch.Tensor, py: int, px: int) -> torch.Tensor:
    """Zero padding by ``py`` rows and ``px`` columns on *both* sides (one-sided padding
    would move the centre and break rotations/reflections)."""
    if not (py or px):
        return f
    return F.pad(f, (px, px, py, py))


def crop(f: torch.Tensor, py: int, px: int) -> torch.Tensor:
    h, w = f.shape[-2:]
    return f[..., py : h - py, px : w - px]


__all__ = ["Group", "GROUP_NAMES", "make_group", "act", "transform", "signs", "GroupPointwise",
           "GroupSpectralConv", "pad", "crop"]
