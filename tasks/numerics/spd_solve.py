"""Solver choice for the FV systems, and sparse SPD solvers for a sequence of matrices
that share one sparsity pattern.

Backends (chosen by measurement, see ``docs/darcy.md`` and
``benchmarks/bench_darcy_solvers.py``):

* ``"pcg-dst"``: matrix-free conjugate gradients preconditioned by the constant-
  coefficient operator, inverted with two DSTs (`tasks.fv2d.pcg_dst_solve`); its
  iteration count does not grow with the grid but does with the coefficient contrast
  (measured to rtol 1e-10: 22-25 iterations at max(a)/min(a) = 4, 67-108 at 100).
* ``"cholmod"``: CHOLMOD sparse Cholesky (optional ``scikit-sparse``); the symbolic
  analysis (fill-reducing ordering, elimination tree) is done once per pattern and only
  the numeric factorisation is repeated per matrix.
* ``"splu"``: SciPy SuperLU with the ``MMD_AT_PLUS_A`` ordering (the best SciPy ordering
  for symmetric 2D stencils).
* ``"spsolve"``: ``scipy.sparse.linalg.spsolve`` with its defaults.
* ``"pyamg"``: smoothed-aggregation AMG as a CG preconditioner, relative residual
  ``1e-10``; the hierarchy is rebuilt per matrix because the coefficient changes.

``"auto"`` is ``"pcg-dst"`` up to a contrast of `PCG_MAX_CONTRAST` on grids of at least
`PCG_MIN_CELLS` cells (and on smaller ones when CHOLMOD is missing), otherwise the fastest
matrix solver importable here (`FALLBACK_ORDER`).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

MATRIX_SOLVERS: tuple[str, ...] = ("cholmod", "splu", "spsolve", "pyamg")
OPTIONAL: dict[str, str] = {"cholmod": "sksparse", "pyamg": "pyamg"}  # backend -> module
SOLVERS: tuple[str, ...] = ("pcg-dst", *MATRIX_SOLVERS)
# Fastest first, measured at 128^2 and 256^2 on the 2-core dev machine (docs/darcy.md).
FALLBACK_ORDER: tuple[str, ...] = ("cholmod", "splu", "pyamg", "spsolve")
# pcg-dst beat CHOLMOD up to a contrast of ~10 at 64^2 and ~100 at 256^2, by 2-3x from
# 128^2 on; below 128^2 CHOLMOD was as fast or up to 1.8x faster (docs/darcy.md).
PCG_MAX_CONTRAST = 10.0
PCG_MIN_CELLS = 128 * 128
# Relative residual of the iterative solvers: far below float32 round-off of the targets.
ITER_RTOL = 1e-10


def available_solvers() -> tuple[str, ...]:
    """The backends importable in this environment, in `SOLVERS` order."""
    return tuple(s for s in SOLVERS if s not in OPTIONAL or importlib.util.find_spec(OPTIONAL[s]) is not None)


def resolve_solver(name: str, contrast: float = 1.0, cells: int = PCG_MIN_CELLS, portable: bool = False) -> str:
    """The backend that ``name`` selects; ``"auto"`` picks the best available one for a
    coefficient with ``max(a) / min(a) = contrast`` on a grid of ``cells`` cells.

    ``portable=True`` makes ``"auto"`` ignore the optional backends (CHOLMOD, pyamg), so
    that its choice is the same on every installation. Raises ``ValueError`` for an
    unknown or unavailable name.
    """
    avail = available_solvers()
    if portable and name == "auto":
        avail = tuple(s for s in avail if s not in OPTIONAL)
    if name == "auto":
        if contrast <= PCG_MAX_CONTRAST and (cells >= PCG_MIN_CELLS or "cholmod" not in avail):
            return "pcg-dst"
        return next(s for s in FALLBACK_ORDER if s in avail)
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; valid: auto, {', '.join(SOLVERS)}")
    if name not in avail:
        hint = " (pip install scikit-sparse; needs libsuitesparse-dev)" if name == "cholmod" else ""
        raise ValueError(f"solver {name!r} is not installed{hint}; available: auto, {', '.join(avail)}")
    return name


class SPDSolver:
    """Solves ``A x = b`` for successive SPD matrices with one fixed sparsity pattern.

    ``A`` is passed as CSC; for CHOLMOD the first matrix fixes the symbolic analysis,
    which every later call reuses (so every later matrix must have the same pattern).
    """

    def __init__(self, name: str) -> None:
        if name not in MATRIX_SOLVERS:
            raise ValueError(f"{name!r} is not a sparse-matrix solver; valid: {', '.join(MATRIX_SOLVERS)}")
        self.name = resolve_solver(name)
        self._factor = None  # CHOLMOD symbolic (then numeric) factor, reused

    def solve(self, a: sp.csc_matrix, b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=np.float64)
        if self.name == "cholmod":
            return self._cholmod(a, b)
        if self.name == "splu":
            # Minimum degree on A^T + A suits the symmetric stencil; SuperLU's symmetric
            # mode and diag_pivot_thresh=0 measured no faster (docs/darcy.md).
            return spla.splu(a, permc_spec="MMD_AT_PLUS_A").solve(b)
        if self.name == "spsolve":
            return np.asarray(spla.spsolve(a, b))
        return self._pyamg(a, b)

    def _cholmod(self, a: sp.csc_matrix, b: np.ndarray) -> np.ndarray:
        from sksparse.cholmod import CholmodError, analyze

        if self._factor is None:
            # Simplicial LDL' with nested dissection was fastest per factorisation here
            # (Debian's reference BLAS makes supernodal slower); the analysis is paid once.
            try:
                self._factor = analyze(a, mode="simplicial", ordering_method="nesdis")
            except CholmodError:  # a CHOLMOD built without METIS has no nested dissection
                self._factor = analyze(a, mode="simplicial")
        self._factor.cholesky_inplace(a)
        return np.asarray(self._factor(b))

    @staticmethod
    def _pyamg(a: sp.csc_matrix, b: np.ndarray) -> np.ndarray:
        import pyamg

        csr = sp.csr_matrix((a.data, a.indices, a.indptr), shape=a.shape)  # A symmetric: CSC == CSR
        ml = pyamg.smoothed_aggregation_solver(csr, symmetry="symmetric")
        res: list[float] = []
        x = ml.solve(b, tol=ITER_RTOL, maxiter=200, accel="cg", residuals=res)
        if res[-1] > ITER_RTOL * res[0] * 10:
            raise RuntimeError(f"pyamg did not converge: relative residual {res[-1] / res[0]:.2e}")
        return np.asarray(x)
