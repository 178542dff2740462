"""Darcy's physics laws: what every block average of the fine solution satisfies exactly.

* the discrete maximum principle (`max_principle`): ``u`` has the sign of ``f``;
* the compliance bounds (`compliance_bounds`, `compliance_bound`): Voigt- and
  Reuss-type energy bounds on the domain mean of ``u / f``, from the fine coefficient;
* `law_vector`: both as one differentiable torch vector per sample whose squared norm is
  ``max_principle^2 + compliance_bound^2`` (zero for the truth), the law form of a
  physics loss (``TaskSpec.laws``).

Written by hand: the bounds are particular to this scheme (no library has them).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from tasks.darcy import fv as fv2d


def max_principle(pred: np.ndarray, forcing: float) -> np.ndarray:
    """Discrete maximum principle: ``||min(sign(f) pred, 0)||_2 / ||pred||_2`` per sample.

    The fine FV matrix is an M-matrix (positive diagonal, non-positive off-diagonal,
    irreducibly diagonally dominant through the wall faces), so ``A u = f`` with a constant
    ``f > 0`` and zero Dirichlet walls gives ``u > 0`` in every cell; block averages keep the
    sign, and so does the coarse FV solution (also an M-matrix). The metric is the share of
    the prediction's norm that has the wrong sign: exactly 0 for the truth and the coarse
    solver, 1 for ``-truth``, 0 for a zero field (which satisfies the law).
    """
    p = np.sign(forcing) * np.asarray(pred, dtype=np.float64)
    num = np.sqrt((np.minimum(p, 0.0) ** 2).sum(axis=(1, 2, 3)))
    den = np.sqrt((p**2).sum(axis=(1, 2, 3)))
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@lru_cache(maxsize=8)
def _unit_solution(ny: int, nx: int) -> np.ndarray:
    """``phi`` with ``A(1) phi = 1``: the FV solution for a unit coefficient and source."""
    phi = fv2d.solve(np.ones((ny, nx)), 1.0, solver="splu")
    phi.setflags(write=False)
    return phi


def _faces(u: np.ndarray) -> list[np.ndarray]:
    """``G u``: differences across the interior x and y faces, and ``u`` at the four walls
    (``A(a) = G^T diag(t(a)) G``, `_face_transmissibilities` in the same order)."""
    return [u[..., :, :-1] - u[..., :, 1:], u[..., :-1, :] - u[..., 1:, :],
            u[..., :, :1], u[..., :, -1:], u[..., :1, :], u[..., -1:, :]]


def _face_transmissibilities(a: np.ndarray) -> list[np.ndarray]:
    ny, nx = a.shape[-2:]
    tx, ty, bx, by = fv2d.transmissibilities(a, 1.0 / ny, 1.0 / nx)
    return [tx, ty, bx[..., :, :1], bx[..., :, -1:], by[..., :1, :], by[..., -1:, :]]


def compliance_bounds(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds ``(N,)`` on the domain mean of ``u / f`` from the fine
    coefficient alone (Voigt and Reuss bounds of the discrete energy principles).

    With ``A = G^T diag(t) G`` and the compliance ``J = f^T A^-1 f`` (cell sums):
    ``J = max_v (2 f^T v - v^T A v) >= (f^T v)^2 / (v^T A v)`` for any ``v`` (Dirichlet), and
    ``J = min {q^T diag(1/t) q : G^T q = f} <= q^T diag(1/t) q`` for any balanced flux ``q``
    (Thomson). Both test fields come from the unit-coefficient problem ``A(1) phi = 1``:
    ``v = phi`` and ``q = t(1) G phi``. Since ``f^T u = f^2 n^2 mean(u/f)`` and ``R_k`` keeps
    domain means, ``mean(R_k u) / f`` lies in the returned interval for every ``k``.
    In effect the lower bound divides by a ``|G phi|^2``-weighted arithmetic mean of the
    face coefficients, the upper by the weighted harmonic mean; for a constant coefficient
    both equal the exact mean. The truth sits 12-22 % above the lower and 20-36 % below the
    upper bound at ``small`` (docs/darcy.md).
    """
    a = np.asarray(inputs, dtype=np.float64)[:, 0]
    ny, nx = a.shape[-2:]
    phi = _unit_solution(ny, nx)
    g, t1, ta = _faces(phi), _face_transmissibilities(np.ones((ny, nx))), _face_transmissibilities(a)
    energy = sum((t * gi**2).sum(axis=(-2, -1)) for t, gi in zip(ta, g))
    lower = phi.sum() ** 2 / energy / (ny * nx)
    upper = sum(((s * gi) ** 2 / t).sum(axis=(-2, -1)) for s, t, gi in zip(t1, ta, g)) / (ny * nx)
    return lower, upper


def compliance_bound(pred: np.ndarray, inputs: np.ndarray, forcing: float) -> np.ndarray:
    """Relative distance of the prediction's domain mean of ``u / f`` outside the
    `compliance_bounds` interval ``[lo, hi]``: ``max(0, (lo - m)/lo, (m - hi)/hi)`` with
    ``m = mean(pred) / f``. Exactly 0 for the truth (the bounds are inequalities of the
    fine scheme); 1 for a zero field."""
    lo, hi = compliance_bounds(inputs)
    m = np.asarray(pred, dtype=np.float64).mean(axis=(1, 2, 3)) / forcing
    return np.maximum(0.0, np.maximum((lo - m) / lo, (m - hi) / hi))


def law_vector(u: torch.Tensor, inputs: torch.Tensor | np.ndarray, k: int, forcing: float) -> torch.Tensor:
    """Law violations of ``u (N, 1, n, n)`` on the grid coarsened by ``k`` as ``(N, n*n + 1)``:
    the wrong-signed part of ``u`` over ``||u||`` (`max_principle`) and the domain mean's
    relative distance outside `compliance_bounds` (`compliance_bound`). Its squared norm
    per sample is ``max_principle^2 + compliance_bound^2``; every ``R_k`` of the truth
    scores 0. Differentiable in ``u``; the bounds come from the fine ``inputs`` (no
    gradient). ``k`` is unused: both laws hold at every level."""
    del k
    x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
    lo, hi = (torch.as_tensor(b, dtype=u.dtype, device=u.device) for b in compliance_bounds(x))
    p = u.flatten(1) * float(np.sign(forcing))
    norm = p.pow(2).sum(1, keepdim=True).sqrt().clamp_min(torch.finfo(u.dtype).tiny)
    m = u.mean((1, 2, 3)) / forcing
    outside = torch.maximum(torch.relu((lo - m) / lo), torch.relu((m - hi) / hi))
    return torch.cat([torch.clamp(p, max=0.0) / norm, outside[:, None]], dim=1)
