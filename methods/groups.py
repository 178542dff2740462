"""The lattice symmetry groups that a task declares (`TaskSpec.symmetry`) and their
action on fields; used by `gfno` (its layers), `ppino` and data augmentation
(`methods.augment`).

A group ``G`` acts on fields on a cell-centred grid by moving points,
``(g f)(p) = chi(g) f(A_g^{-1} p)``, with ``A_g`` an integer 2x2 matrix on the centred
coordinates ``(y, x)`` and ``chi`` the channel's parity character (+1 for a scalar;
``det A_g`` for a pseudoscalar such as vorticity or the reflected component of a vector
such as ``u`` under ``x -> -x``). An element that swaps the axes maps only a square grid
to itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

_ROT = np.array([[0, -1], [1, 0]])  # rotation by 90 degrees on (y, x)
_FLIP_X = np.array([[1, 0], [0, -1]])  # x -> -x

#: groups by the name used in ``TaskSpec.symmetry``
GROUP_NAMES: tuple[str, ...] = ("p4m", "p4", "p2", "flip_x")


@dataclass(frozen=True)
class Group:
    """A finite group of lattice symmetries given by its matrices (element 0 = identity)."""

    name: str
    mats: tuple[tuple[tuple[int, ...], ...], ...]

    @property
    def order(self) -> int:
        return len(self.mats)

    def mat(self, g: int) -> np.ndarray:
        return np.array(self.mats[g])

    @property
    def rotates(self) -> bool:
        """Whether some element swaps the axes (then the grid must be square)."""
        return any(m[0][1] != 0 for m in self.mats)

    def maps_grid(self, g: int, shape: tuple[int, int]) -> bool:
        """Whether element ``g`` maps an ``H x W`` grid to itself (H != W: no axis swap)."""
        return shape[0] == shape[1] or self.mats[g][0][1] == 0

    def index(self, m: np.ndarray) -> int:
        return self.mats.index(tuple(map(tuple, m.tolist())))

    def table(self) -> np.ndarray:
        """``T[h, g] = index of h^-1 g`` (what the group convolution needs)."""
        n = self.order
        inv = [self.index(np.round(np.linalg.inv(self.mat(h))).astype(int)) for h in range(n)]
        return np.array([[self.index(self.mat(inv[h]) @ self.mat(g)) for g in range(n)] for h in range(n)])

    def det(self) -> np.ndarray:
        return np.array([round(np.linalg.det(self.mat(g))) for g in range(self.order)])


def make_group(name: str) -> Group:
    """The group named in ``TaskSpec.symmetry`` (see `GROUP_NAMES`)."""
    rots = [np.linalg.matrix_power(_ROT, r) for r in range(4)]
    elems = {
        "p4": rots,
        "p4m": rots + [r @ _FLIP_X for r in rots],
        "p2": [rots[0], rots[2]],
        "flip_x": [rots[0], _FLIP_X],
    }
    if name not in elems:
        raise ValueError(f"unknown symmetry group {name!r}; valid: {', '.join(GROUP_NAMES)}")
    return Group(name, tuple(tuple(map(tuple, m.astype(int).tolist())) for m in elems[name]))


@lru_cache(maxsize=256)
def gather_index(group: Group, g: int, shape: tuple[int, int]) -> torch.Tensor:
    """Flat source index ``src`` with ``(g f).flat = f.flat[src]`` on a centred grid
    (``f(A^-1 p)``; doubled coordinates keep cell centres integer)."""
    h, w = shape
    yy, xx = np.meshgrid(2 * np.arange(h) - (h - 1), 2 * np.arange(w) - (w - 1), indexing="ij")
    src = np.round(np.linalg.inv(group.mat(g))).astype(int) @ np.stack([yy.ravel(), xx.ravel()])
    iy, ix = (src[0] + h - 1) // 2, (src[1] + w - 1) // 2
    if iy.min() < 0 or iy.max() >= h or ix.min() < 0 or ix.max() >= w:
        raise ValueError(f"group {group.name} does not map a {h}x{w} grid to itself")
    return torch.as_tensor(iy * w + ix)


def act(f: torch.Tensor, group: Group, g: int) -> torch.Tensor:
    """Move the points of ``f (..., H, W)`` by element ``g`` (no parity sign)."""
    src = gather_index(group, g, tuple(f.shape[-2:])).to(f.device)
    return f.flatten(-2)[..., src].reshape(f.shape)


def transform(f: torch.Tensor, group: Group, g: int, parity: tuple[int, ...]) -> torch.Tensor:
    """The group action on a channel-first field ``(B, C, H, W)`` with per-channel parity."""
    sign = torch.tensor([1.0 if p > 0 or group.det()[g] > 0 else -1.0 for p in parity], dtype=f.dtype, device=f.device)
    return act(f, group, g) * sign.view(1, -1, 1, 1)


def signs(group: Group, parity: tuple[int, ...]) -> torch.Tensor:
    """``chi_c(h)`` as a ``(C, |G|)`` tensor of +-1."""
    det = torch.as_tensor(group.det(), dtype=torch.float64)
    return torch.stack([torch.ones_like(det) if p > 0 else det for p in parity])


__all__ = ["GROUP_NAMES", "Group", "act", "gather_index", "make_group", "signs", "transform"]
