"""Helpers for tasks' continuous PDEs (`nskernel.pointwise.PointwisePDE`): evaluating
cell-wise fields at points and autograd derivatives. Shared by every task that
publishes a pointwise PDE."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def cell_lookup(field2d: np.ndarray, x: np.ndarray, lower: Sequence[float], upper: Sequence[float]) -> np.ndarray:
    """Values of a cell-wise constant field ``field2d (..., H, W)`` (axis -2 is the second
    coordinate, axis -1 the first) at points ``x (n, >=2)``: the value of the fine cell
    containing each point (points on the boundary belong to the adjacent cell).

    Returns ``(n, ...)`` (leading axes of ``field2d`` moved last)."""
    h, w = field2d.shape[-2:]
    fx = (x[:, 0] - lower[0]) / (upper[0] - lower[0])
    fy = (x[:, 1] - lower[1]) / (upper[1] - lower[1])
    j = np.clip(np.floor(fx * w).astype(np.int64), 0, w - 1)
    i = np.clip(np.floor(fy * h).astype(np.int64), 0, h - 1)
    vals = field2d[..., i, j]  # (..., n)
    return np.moveaxis(vals, -1, 0)


def bilinear(fields: np.ndarray, x: np.ndarray, lower: Sequence[float], upper: Sequence[float],
             periodic_first: bool = False, periodic_second: bool = False) -> np.ndarray:
    """Bilinear interpolation of cell-centred fields ``(C, H, W)`` (axis -1 along the
    first coordinate, axis -2 along the second) at points ``x (n, >=2)``; returns
    ``(n, C)``. A periodic coordinate wraps around; along a bounded one, points within
    half a cell of a wall are extrapolated linearly from the two wall-side cells (exact
    for linear profiles such as conduction)."""
    c, h, w = fields.shape

    def axis(coord: np.ndarray, n: int, lo: float, hi: float, periodic: bool) -> tuple[np.ndarray, ...]:
        s = (coord - lo) / (hi - lo) * n - 0.5  # position in cell-centre index units
        i0 = np.floor(s).astype(np.int64)
        if periodic:
            return i0 % n, (i0 + 1) % n, s - i0
        i0 = np.clip(i0, 0, max(n - 2, 0))
        return i0, np.minimum(i0 + 1, n - 1), s - i0

    j0, j1, fx = axis(x[:, 0], w, lower[0], upper[0], periodic_first)
    i0, i1, fy = axis(x[:, 1], h, lower[1], upper[1], periodic_second)
    top = fields[:, i0, j0] * (1 - fx) + fields[:, i0, j1] * fx
    bottom = fields[:, i1, j0] * (1 - fx) + fields[:, i1, j1] * fx
    return (top * (1 - fy) + bottom * fy).T


def cell_centre_points(h: int, w: int, lower: Sequence[float], upper: Sequence[float]) -> np.ndarray:
    """Fine cell centres as points ``(h*w, 2)`` ``(first coord, second coord)``, in the
    row-major order of a ``(h, w)`` array (axis 0 = second coordinate)."""
    xs = lower[0] + (np.arange(w) + 0.5) * (upper[0] - lower[0]) / w
    ys = lower[1] + (np.arange(h) + 0.5) * (upper[1] - lower[1]) / h
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def grad(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``d y / d x`` per point for a scalar-per-point ``y (n, 1)``: ``(n, d)``, keeping the
    graph (residuals are differentiated again by the optimiser). A ``y`` that does not
    depend on ``x`` (e.g. the derivative of a field linear in ``x``) has gradient 0."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    return torch.autograd.grad(y, x, grad_outputs=torch.ones_like(y), create_graph=True, allow_unused=True,
                               materialize_grads=True)[0]


__all__ = ["bilinear", "cell_centre_points", "cell_lookup", "grad"]
