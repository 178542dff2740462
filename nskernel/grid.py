"""Grid operators shared by every task, method and metric (part of the kernel: one
implementation, used by every layer).

`restrict` is *the* coarse-graining operator ``R_k`` of the suite: the k x k block
(finite-volume cell) average. It preserves domain integrals exactly, so conservation
metrics never blame the filter. With ``dy`` (cell heights of a non-uniform vertical grid)
it becomes the volume-weighted block average, which is conservative on that grid too.
It accepts NumPy arrays and torch tensors of shape ``(..., H, W)``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

Array = TypeVar("Array", bound=Any)


def _check(shape: tuple[int, ...], k: int) -> tuple[int, int]:
    h, w = shape[-2], shape[-1]
    if k < 1 or h % k or w % k:
        raise ValueError(f"restriction factor k={k} does not divide the grid {h}x{w}")
    return h // k, w // k


def restrict(u: Array, k: int, dy: Array | None = None) -> Array:
    """Block average ``R_k`` over the last two axes (H, W).

    ``dy`` optionally gives the H cell heights of a non-uniform grid (vertical axis);
    averages are then weighted by cell area so that the integral is preserved.
    """
    if k == 1:
        return u
    hc, wc = _check(tuple(u.shape), k)
    lead = tuple(u.shape[:-2])
    if dy is None:
        blocks = u.reshape(*lead, hc, k, wc, k)
        return blocks.mean(axis=(-3, -1)) if isinstance(u, np.ndarray) else blocks.mean(dim=(-3, -1))
    wts = dy.reshape(hc, k)
    frac = wts / wts.sum(-1, keepdims=True) if isinstance(wts, np.ndarray) else wts / wts.sum(-1, keepdim=True)
    blocks = u.reshape(*lead, hc, k, wc, k) * frac.reshape(hc, k, 1, 1)
    return blocks.sum(axis=-3).mean(axis=-1) if isinstance(u, np.ndarray) else blocks.sum(-3).mean(-1)


def restrict_dy(dy: Array, k: int) -> Array:
    """Cell heights of the coarse grid that matches ``restrict(u, k, dy)``."""
    return dy.reshape(-1, k).sum(-1)


def prolong(u: Array, k: int) -> Array:
    """Piecewise-constant prolongation (the adjoint of ``restrict`` up to a factor k^2);
    ``restrict(prolong(u, k), k) == u`` exactly."""
    if k == 1:
        return u
    if isinstance(u, np.ndarray):
        return np.repeat(np.repeat(u, k, axis=-2), k, axis=-1)
    return u.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)


def cell_centres(n: int, length: float = 1.0) -> np.ndarray:
    """Cell-centre coordinates of a uniform 1D grid of ``n`` cells on ``[0, length)``."""
    return (np.arange(n) + 0.5) * (length / n)
