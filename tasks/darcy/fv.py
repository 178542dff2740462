"""Cell-centred finite volumes for ``-div(a grad u) = f`` on a rectangle, ``u = 0`` on
the boundary.

Grid: ``ny x nx`` cells of size ``hy x hx`` (axis 0 is y, axis 1 is x), unknowns at cell
centres. The flux through the face between cells P and Q is ``T_PQ (u_P - u_Q)`` with the
transmissibility ``T_PQ = a_face * (face length) / (centre distance)`` and ``a_face`` the
harmonic mean of the two cell coefficients (the exact flux of a 1D two-layer medium). A
boundary face sees the wall at half a cell from the centre, so its transmissibility is
``2 a_P * (face length) / h`` with ``u_wall = 0``. Dividing each cell balance by the cell
area gives ``A u = f``, with ``A`` symmetric positive definite; ``A u`` is the net
outflow per unit area. The scheme is second order in ``u`` at the cell centres for smooth
``a`` and ``f`` sampled at the centres (see ``docs/darcy.md``).

The same formulas serve NumPy (assembly for the sparse solvers) and torch (a
differentiable stencil apply for residuals), so the two agree to round-off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from tasks.numerics.spd_solve import ITER_RTOL, SPDSolver, resolve_solver

# Values per batched PCG call: batching amortises NumPy's per-call overhead on small grids,
# while the dozen work arrays of an iteration should stay in cache; per-sample time was
# lowest for batches of 16k-64k values at 16^2-64^2 (up to 17x faster than one by one at 16^2).
PCG_BATCH_VALUES = 1 << 15


def _harmonic(p: Any, q: Any) -> Any:
    return 2.0 * p * q / (p + q)


def transmissibilities(a: Any, hy: float, hx: float) -> tuple[Any, Any, Any, Any]:
    """Per-unit-area transmissibilities of a coefficient field ``a (..., ny, nx)``.

    Returns ``(tx, ty, bx, by)``: interior x faces ``(..., ny, nx-1)``, interior y faces
    ``(..., ny-1, nx)``, and the boundary coefficient of one wall face per cell in x
    (``bx = 2 a / hx^2``) and in y (``by = 2 a / hy^2``). Works on arrays and tensors.
    """
    tx = _harmonic(a[..., :, :-1], a[..., :, 1:]) / hx**2
    ty = _harmonic(a[..., :-1, :], a[..., 1:, :]) / hy**2
    return tx, ty, 2.0 * a / hx**2, 2.0 * a / hy**2


def _wall_mask(n: int) -> np.ndarray:
    """Number of walls (0, 1 or 2) touched by each cell of a 1D row of ``n`` cells."""
    m = np.zeros(n)
    m[0] += 1.0
    m[-1] += 1.0
    return m


def _diagonal(tx: np.ndarray, ty: np.ndarray, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Diagonal of ``A``: the sum of a cell's face transmissibilities, walls included."""
    ny, nx = bx.shape[-2:]
    diag = bx * _wall_mask(nx) + by * _wall_mask(ny)[:, None]
    diag[..., :, :-1] += tx
    diag[..., :, 1:] += tx
    diag[..., :-1, :] += ty
    diag[..., 1:, :] += ty
    return diag


class FVPattern:
    """The sparsity pattern of ``A`` on an ``ny x nx`` grid, built once and reused.

    ``matrix(a)`` fills the fixed CSC structure with a single gather from the face
    transmissibilities, so assembling a new sample costs a few vector operations.
    Because ``A`` is symmetric its CSC arrays are also its CSR arrays (``csr(a)``).
    """

    def __init__(self, ny: int, nx: int, length: tuple[float, float] = (1.0, 1.0)) -> None:
        self.ny, self.nx = ny, nx
        self.hy, self.hx = length[0] / ny, length[1] / nx
        idx = np.arange(ny * nx).reshape(ny, nx)
        nfx, nfy = ny * (nx - 1), (ny - 1) * nx
        # Values are gathered from vals = [-tx, -ty, diag] (flattened, in that order).
        left, right = idx[:, :-1].ravel(), idx[:, 1:].ravel()
        low, up = idx[:-1, :].ravel(), idx[1:, :].ravel()
        src_fx, src_fy = np.arange(nfx), nfx + np.arange(nfy)
        rows = np.concatenate([left, right, low, up, idx.ravel()])
        cols = np.concatenate([right, left, up, low, idx.ravel()])
        src = np.concatenate([src_fx, src_fx, src_fy, src_fy, nfx + nfy + np.arange(ny * nx)])
        order = np.lexsort((rows, cols))
        self.indices = rows[order].astype(np.int32)
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=ny * nx))]).astype(np.int32)
        self._src = src[order]

    def data(self, a: np.ndarray) -> np.ndarray:
        """Nonzeros of ``A(a)`` in CSC (= CSR) order, float64."""
        a = np.asarray(a, dtype=np.float64)
        if a.shape != (self.ny, self.nx):
            raise ValueError(f"coefficient shape {a.shape} != grid {(self.ny, self.nx)}")
        tx, ty, bx, by = transmissibilities(a, self.hy, self.hx)
        diag = _diagonal(tx, ty, bx, by)
        vals = np.concatenate([-tx.ravel(), -ty.ravel(), diag.ravel()])
        return vals[self._src]

    def matrix(self, a: np.ndarray) -> sp.csc_matrix:
        """``A(a)`` as a CSC matrix of shape ``(ny*nx, ny*nx)`` (row-major cell order)."""
        n = self.ny * self.nx
        return sp.csc_matrix((self.data(a), self.indices, self.indptr), shape=(n, n))

    def csr(self, a: np.ndarray) -> sp.csr_matrix:
        n = self.ny * self.nx
        return sp.csr_matrix((self.data(a), self.indices, self.indptr), shape=(n, n))


def apply_operator(u: torch.Tensor, a: torch.Tensor, length: tuple[float, float] = (1.0, 1.0)) -> torch.Tensor:
    """``A(a) u`` for tensors ``u, a`` of shape ``(B, C, ny, nx)``; differentiable.

    The net outflow per unit area of every cell, the same operator as `FVPattern`.
    """
    ny, nx = u.shape[-2:]
    hy, hx = length[0] / ny, length[1] / nx
    tx, ty, bx, by = transmissibilities(a, hy, hx)
    fx = tx * (u[..., :, :-1] - u[..., :, 1:])  # flux to the right through interior x faces
    fy = ty * (u[..., :-1, :] - u[..., 1:, :])
    out = F.pad(fx, (0, 1)) - F.pad(fx, (1, 0)) + F.pad(fy, (0, 0, 0, 1)) - F.pad(fy, (0, 0, 1, 0))
    walls_x = torch.as_tensor(_wall_mask(nx), dtype=u.dtype, device=u.device)
    walls_y = torch.as_tensor(_wall_mask(ny), dtype=u.dtype, device=u.device)[:, None]
    return out + (bx * walls_x + by * walls_y) * u


def face_fluxes(
    u: np.ndarray, a: np.ndarray, length: tuple[float, float] = (1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Total fluxes ``-a du/dn * (face length)`` through every face of the grid.

    Returns ``(qx (ny, nx+1), qy (ny+1, nx))``, positive in +x / +y, walls included. The
    net outflow of a cell, ``qx[:, 1:] - qx[:, :-1] + qy[1:] - qy[:-1]``, equals
    ``(A u) * hx * hy``.
    """
    ny, nx = u.shape
    hy, hx = length[0] / ny, length[1] / nx
    tx, ty, bx, by = transmissibilities(np.asarray(a, dtype=np.float64), hy, hx)
    area = hx * hy
    qx = np.zeros((ny, nx + 1))
    qy = np.zeros((ny + 1, nx))
    qx[:, 1:-1] = tx * (u[:, :-1] - u[:, 1:]) * area
    qy[1:-1, :] = ty * (u[:-1, :] - u[1:, :]) * area
    qx[:, 0] = -bx[:, 0] * u[:, 0] * area
    qx[:, -1] = bx[:, -1] * u[:, -1] * area
    qy[0, :] = -by[0, :] * u[0, :] * area
    qy[-1, :] = by[-1, :] * u[-1, :] * area
    return qx, qy


def pcg_dst_solve(
    a: np.ndarray,
    f: float | np.ndarray,
    rtol: float = 1e-10,
    length: tuple[float, float] = (1.0, 1.0),
    maxiter: int = 1000,
) -> tuple[np.ndarray, int]:
    """Solve ``A(a) u = f`` for a batch ``a (B, ny, nx)`` (``f`` broadcastable) by CG
    preconditioned with the constant-coefficient operator ``A(1)``; returns ``(u, iters)``.

    With the half-cell wall distance, ``A(1)`` is exactly the Dirichlet Laplacian that
    the type-2 DST diagonalises (odd reflection about the wall), so the preconditioner is
    two DSTs and a division. ``A(a)`` and ``A(1)`` are spectrally equivalent with
    ``cond <= max(a) / min(a)`` (face means stay within the range of ``a``), so the
    iteration count depends on the contrast only, not on the grid size. Stops when every
    sample has ``||f - A u||_2 <= rtol ||f||_2``.
    """
    ny, nx = a.shape[-2:]
    hy, hx = length[0] / ny, length[1] / nx
    tx, ty, bx, by = transmissibilities(a, hy, hx)
    diag = _diagonal(tx, ty, bx, by)

    def apply(v: np.ndarray) -> np.ndarray:
        out = diag * v
        out[..., :, :-1] -= tx * v[..., :, 1:]
        out[..., :, 1:] -= tx * v[..., :, :-1]
        out[..., :-1, :] -= ty * v[..., 1:, :]
        out[..., 1:, :] -= ty * v[..., :-1, :]
        return out

    lam_y = (2.0 / hy * np.sin(np.pi * np.arange(1, ny + 1) / (2 * ny))) ** 2
    lam_x = (2.0 / hx * np.sin(np.pi * np.arange(1, nx + 1) / (2 * nx))) ** 2
    inv_lam = 1.0 / (lam_y[:, None] + lam_x[None, :])

    def precond(r: np.ndarray) -> np.ndarray:
        spec = scipy.fft.dstn(r, type=2, axes=(-2, -1), norm="ortho", workers=1)
        return scipy.fft.idstn(spec * inv_lam, type=2, axes=(-2, -1), norm="ortho", workers=1)

    def dot(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.einsum("...ij,...ij->...", p, q)[..., None, None]

    f = np.broadcast_to(np.asarray(f, dtype=np.float64), a.shape)
    u = np.zeros(a.shape)
    r = f.copy()
    z = precond(r)
    p = z.copy()
    rz = dot(r, z)
    stop = rtol * np.sqrt(dot(f, f))
    for it in range(1, maxiter + 1):
        ap = apply(p)
        pap = dot(p, ap)
        step = rz / np.where(pap > 0, pap, 1.0)  # a sample solved exactly stays put
        u += step * p
        r -= step * ap
        if np.all(np.sqrt(dot(r, r)) <= stop):
            return u, it
        z = precond(r)
        rz_new = dot(r, z)
        p = z + (rz_new / np.where(rz > 0, rz, 1.0)) * p
        rz = rz_new
    raise RuntimeError(f"pcg_dst_solve did not reach rtol={rtol} in {maxiter} iterations")


def solve(
    a: np.ndarray, f: float | np.ndarray = 1.0, solver: str = "auto", progress: bool = False
) -> np.ndarray:
    """FV solutions of ``-div(a grad u) = f``, ``u = 0`` on the walls, unit square.

    ``a`` is ``(..., ny, nx)`` (any leading batch shape); ``f`` a constant or a field
    ``(ny, nx)`` of source values at the cell centres. ``solver`` is a name from
    `tasks.spd_solve.SOLVERS` or ``"auto"``. Returns float64 of ``a``'s shape. The
    sparsity pattern (and CHOLMOD's symbolic analysis) is shared by the whole batch.
    """
    from tqdm.auto import tqdm

    a = np.asarray(a, dtype=np.float64)
    shape, (ny, nx) = a.shape, a.shape[-2:]
    flat = a.reshape(-1, ny, nx)
    if flat.size and not flat.min() > 0:
        raise ValueError(f"the coefficient must be positive, min is {flat.min()}")
    name = resolve_solver(solver, contrast=float(flat.max() / flat.min()) if flat.size else 1.0, cells=ny * nx)
    rhs = np.broadcast_to(np.asarray(f, dtype=np.float64), (ny, nx))
    u = np.empty_like(flat)
    bar = tqdm(total=len(flat), disable=not progress, desc=f"FV solves ({name})")
    if name == "pcg-dst":
        chunk = max(1, PCG_BATCH_VALUES // (ny * nx))
        for lo in range(0, len(flat), chunk):
            u[lo : lo + chunk] = pcg_dst_solve(flat[lo : lo + chunk], rhs, rtol=ITER_RTOL)[0]
            bar.update(len(u[lo : lo + chunk]))
    else:
        pattern, spd = FVPattern(ny, nx), SPDSolver(name)
        for i in range(len(flat)):
            u[i] = spd.solve(pattern.matrix(flat[i]), rhs.ravel()).reshape(ny, nx)
            bar.update(1)
    bar.close()
    return u.reshape(shape)
