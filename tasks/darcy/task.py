"""Two-phase Darcy flow: ``-div(a grad u) = f`` on the unit square, ``u = 0`` on the
boundary, ``f`` constant (``forcing``).

The permeability ``a`` is a thresholded Gaussian random field: ``a = hi`` where
``g >= 0``, ``lo`` elsewhere, with ``g ~ N(0, (-Laplacian + tau^2)^(-alpha))`` (Neumann
Laplacian, cosine Karhunen-Loeve series, see `grf`). The fine solution is the
cell-centred finite-volume solution of `tasks.fv2d`; the coarse classical solver is the
same scheme on the k-coarse grid with a block-mean upscaled coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np
import scipy.fft
import torch

from nskernel import K_VALUES, SIZES, CoarseSolver, Dataset, Metric, TaskSpec
from nskernel.grid import restrict
from tasks.darcy import fv as fv2d
from tasks.darcy.laws import compliance_bound, compliance_bounds, law_vector, max_principle
from tasks.darcy.pointwise import darcy_pointwise
from tasks.numerics.spd_solve import resolve_solver

MEANS: tuple[str, ...] = ("harmonic", "arithmetic", "geometric")
# Best upscaling mean by measurement (docs/darcy.md, "Coarse solver").
DEFAULT_MEAN = "arithmetic"


def grf(n: int, alpha: float, tau: float, rng: np.random.Generator) -> np.ndarray:
    """One sample of ``g ~ N(0, (-Laplacian + tau^2 I)^(-alpha))`` at the ``n x n`` cell
    centres of the unit square (Neumann Laplacian), conditioned on zero spatial mean.

    Karhunen-Loeve series over the L2-orthonormal eigenfunctions
    ``phi_ij = c_i c_j cos(i pi x) cos(j pi y)`` (``c_0 = 1``, ``c_i = sqrt 2``) with
    eigenvalues ``pi^2 (i^2 + j^2)``, truncated to ``0 <= i, j < n``:
    ``g = sum_ij lambda_ij^(1/2) xi_ij phi_ij``, ``lambda_ij = (pi^2 (i^2+j^2) + tau^2)^-alpha``.
    The constant mode (i = j = 0) is dropped: it would carry 57% of the variance and make
    8% of the thresholded media single-phase (docs/darcy.md); the FNO data drop it too.
    At the centres ``x_m = (m + 1/2) / n`` the series is a type-2 inverse DCT with
    ``norm="forward"`` (``x_m = X_0 + 2 sum_i X_i cos(i pi x_m)``), hence the coefficients
    ``X_ij = lambda_ij^(1/2) xi_ij w_i w_j`` with ``w_0 = 1``, ``w_i = c_i / 2 = 1/sqrt 2``.
    """
    i = np.arange(n)
    sqrt_lam = (np.pi**2 * (i[:, None] ** 2 + i[None, :] ** 2) + tau**2) ** (-alpha / 2.0)
    w = np.where(i == 0, 1.0, 1.0 / np.sqrt(2.0))
    coeffs = rng.standard_normal((n, n)) * sqrt_lam * w[:, None] * w[None, :]
    coeffs[0, 0] = 0.0
    return scipy.fft.idctn(coeffs, type=2, norm="forward")


def upscale(a: np.ndarray | torch.Tensor, k: int, mean: str) -> np.ndarray | torch.Tensor:
    """k x k block mean of a positive coefficient ``(..., H, W)`` (array or tensor)."""
    if mean == "arithmetic":
        return restrict(a, k)
    if mean == "harmonic":
        return 1.0 / restrict(1.0 / a, k)
    if mean == "geometric":
        log = np.log if isinstance(a, np.ndarray) else torch.log
        exp = np.exp if isinstance(a, np.ndarray) else torch.exp
        return exp(restrict(log(a), k))
    raise ValueError(f"unknown upscaling mean {mean!r}; valid: {', '.join(MEANS)}")


def coarse_fv_solve(
    inputs: np.ndarray, k: int, forcing: float = 1.0, mean: str = DEFAULT_MEAN, solver: str = "auto"
) -> np.ndarray:
    """The same FV scheme on the k-coarse grid with the ``mean`` block-averaged coefficient;
    returns ``(N, 1, H/k, W/k)`` float64."""
    if mean not in MEANS:
        raise ValueError(f"unknown upscaling mean {mean!r}; valid: {', '.join(MEANS)}")
    return fv2d.solve(upscale(np.asarray(inputs, dtype=np.float64), k, mean), forcing, solver=solver)


def residual(
    u: torch.Tensor, inputs: torch.Tensor, k: int, forcing: float = 1.0, mean: str = DEFAULT_MEAN
) -> torch.Tensor:
    """Scaled FV residual ``(A_k u - f) / |f|`` of ``u (B, 1, n, n)`` on the grid coarsened
    by ``k`` (``n = N / k``); ``A_1`` is the fine operator, ``A_k`` the coarse operator
    with the ``mean`` upscaled coefficient of ``inputs (B, 1, N, N)``.

    Differentiable in ``u``; runs on ``u``'s device and dtype. The residual of ``u = 0``
    is -1 in every cell, so a field that is wrong by O(1) relative error gives O(1).
    """
    a = torch.as_tensor(inputs, device=u.device).to(u.dtype)
    a_k = a if k == 1 else upscale(a, k, mean)
    if a_k.shape[-2:] != u.shape[-2:]:
        raise ValueError(f"u has grid {tuple(u.shape[-2:])}, expected {tuple(a_k.shape[-2:])} for k={k}")
    return (fv2d.apply_operator(u, a_k) - forcing) / abs(forcing)


def flux_imbalance(
    pred: np.ndarray, inputs: np.ndarray, k: int, forcing: float = 1.0, mean: str = DEFAULT_MEAN
) -> np.ndarray:
    """Coarse flux imbalance per sample under a stated closure: ``||B_k p - f_k||_2 / ||f_k||_2``.

    ``B_k`` is the coarse two-point FV operator with the ``mean`` upscaled coefficient (the
    coarse solver's closure), so this is the net outflow of every coarse cell minus its
    source, in units of the source. Not a law of the truth: the filtered fine solution
    scores the closure error (0.28-0.32 at ``small``, docs/darcy.md) and the coarse FV
    solution ~1e-10. Not a registered metric for that reason; kept for the closure
    measurements (benchmarks/bench_darcy_solvers.py --coarse).
    """
    p = torch.as_tensor(np.asarray(pred, dtype=np.float64))
    a = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
    r = fv2d.apply_operator(p, a if k == 1 else upscale(a, k, mean)).numpy() - forcing
    return np.sqrt((r**2).mean(axis=(1, 2, 3))) / abs(forcing)


@dataclass(frozen=True)
class Physics:
    """What the Darcy metrics need of the task (``TaskSpec.physics``): the constant source."""

    forcing: float


def energy_norm_err(
    pred: np.ndarray, target: np.ndarray, inputs: np.ndarray, k: int, mean: str = DEFAULT_MEAN
) -> np.ndarray:
    """Relative error in the coarse energy norm: ``sqrt(e^T A_k e / y^T A_k y)``, ``e = pred - y``.

    ``A_k`` is the coarse FV operator with the ``mean`` upscaled coefficient (``A_1`` the
    fine one), symmetric positive definite: ``e^T A_k e`` is the discrete ``int a |grad e|^2``
    with the wall terms, the natural norm of this elliptic problem. An error against the
    truth (0 on it by construction), not a law; ``c * y`` scores exactly ``|c - 1|``.
    """
    y = torch.as_tensor(np.asarray(target, dtype=np.float64))
    e = torch.as_tensor(np.asarray(pred, dtype=np.float64)) - y
    a = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
    a_k = a if k == 1 else upscale(a, k, mean)
    num = (e * fv2d.apply_operator(e, a_k)).sum(dim=(1, 2, 3))
    den = (y * fv2d.apply_operator(y, a_k)).sum(dim=(1, 2, 3))
    return torch.sqrt(num.clamp_min(0.0) / den).numpy()


MAX_PRINCIPLE = Metric(
    "max_principle", "discrete maximum principle: share of the prediction's L2 norm with the wrong sign "
    "(u has the sign of f in every cell; 0 for the truth and the coarse FV solution)",
    fn=lambda p, y, x, k, spec: max_principle(p.mean, spec.physics.forcing), group="physics", headline=True)
COMPLIANCE_BOUND = Metric(
    "compliance_bound", "relative distance of the domain mean of u/f outside its Voigt-Reuss energy bounds "
    "computed from the fine coefficient (0 for the truth)",
    fn=lambda p, y, x, k, spec: compliance_bound(p.mean, x, spec.physics.forcing), group="physics")
ENERGY_NORM_ERR = Metric(
    "energy_norm_err", "relative error in the coarse energy norm sqrt(e^T A_k e / y^T A_k y) (an error against "
    "the truth, not a law)",
    fn=lambda p, y, x, k, spec: energy_norm_err(p.mean, y, x, k), group="task")


_SIZES: dict[str, dict[str, int]] = {
    "smoke": {"resolution": 32, "n_train": 16, "n_test": 8, "n_val": 8},
    "small": {"resolution": 64, "n_train": 256, "n_test": 64, "n_val": 64},
    "paper": {"resolution": 256, "n_train": 1000, "n_test": 200, "n_val": 200},
}


@dataclass(frozen=True)
class Darcy:
    """Darcy flow in a two-phase random medium; see the module docstring.

    ``contrast = (hi, lo)`` are the two permeabilities; ``solver`` selects the fine
    solver (``"auto"``: the fastest for this contrast among those installed, see
    `tasks.spd_solve`).
    """

    name: ClassVar[str] = "darcy"
    #: the task's own metrics (besides the suite's), declared once
    metrics: ClassVar[tuple[Metric, ...]] = (MAX_PRINCIPLE, COMPLIANCE_BOUND, ENERGY_NORM_ERR)
    resolution: int = 64
    contrast: tuple[float, float] = (12.0, 3.0)
    alpha: float = 2.0
    tau: float = 3.0
    forcing: float = 1.0
    n_train: int = 256
    n_test: int = 64
    n_val: int = 64
    solver: str = "auto"

    def __post_init__(self) -> None:
        if self.resolution < 16 or self.resolution % 16:
            raise ValueError(f"resolution must be a positive multiple of 16, got {self.resolution}")
        if min(self.contrast) <= 0:
            raise ValueError(f"permeabilities must be positive, got contrast={self.contrast}")
        if self.forcing == 0:
            raise ValueError("forcing must be nonzero (residuals are scaled by it)")
        _ = self.fine_solver, self.data_solver  # fail early on an unknown or missing solver

    @property
    def fine_solver(self) -> str:
        """The solver ``solver`` resolves to for this grid and contrast (timed fine solves)."""
        return resolve_solver(self.solver, max(self.contrast) / min(self.contrast), self.resolution**2)

    @property
    def data_solver(self) -> str:
        """The solver that generates the data: as `fine_solver`, except that ``"auto"``
        ignores optional packages, so the stored data (and their checksum) do not depend
        on whether CHOLMOD is installed; the solvers agree to ~1e-12 anyway."""
        ratio = max(self.contrast) / min(self.contrast)
        return resolve_solver(self.solver, ratio, self.resolution**2, portable=True)

    @classmethod
    def sized(cls, size: str) -> Darcy:
        if size not in _SIZES:
            raise ValueError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
        return cls(**_SIZES[size])

    def with_threads(self, threads: int) -> Darcy:
        return self  # its solvers run on torch and scipy threads, which the cell's context sets

    def spec(self) -> TaskSpec:
        n = self.resolution
        solver = self.fine_solver
        f = self.forcing
        return TaskSpec(
            name=self.name,
            fine_shape=(n, n),
            in_channels=1,
            out_channels=1,
            in_names=("a",),
            out_names=("u",),
            boundary="dirichlet",
            domain=(1.0, 1.0),
            # partials of module functions (not lambdas) keep the spec picklable
            residual=partial(residual, forcing=f),
            residual_exact=True,  # the fine FV solution: A u = f to the solver's tolerance
            laws=partial(law_vector, forcing=f),
            coarse_solvers={
                "fv": CoarseSolver(
                    solve=partial(coarse_fv_solve, forcing=f),
                    params={"mean": DEFAULT_MEAN},
                    choices={"mean": MEANS},
                    description=f"same FV scheme on the k-coarse grid, {'/'.join(MEANS)} block-mean coefficient",
                )
            },
            fine_solve=partial(fv2d.solve, f=f, solver=solver),
            fine_solver_name=f"fv5-{solver}",
            pointwise=darcy_pointwise(self),
            # -div(a grad u) = 1 on the square with u = 0 on its boundary is invariant under
            # the square's rotations and reflections (a and u transform as scalars).
            symmetry="p4m",
            physics=Physics(f),
        )

    def coefficient(self, i: int, seed: int) -> np.ndarray:
        """The permeability field of sample ``i`` of the dataset with ``seed``, float64."""
        g = grf(self.resolution, self.alpha, self.tau, np.random.default_rng([seed, i]))
        hi, lo = self.contrast
        return np.where(g >= 0.0, hi, lo)

    def generate(self, n: int, seed: int, progress: bool = False) -> Dataset:
        """``n`` samples; sample ``i`` depends only on ``(seed, i)`` (prefix property)."""
        res, solver = self.resolution, self.data_solver
        a = np.empty((n, 1, res, res), dtype=np.float64)
        for i in range(n):
            a[i, 0] = self.coefficient(i, seed)
        u = fv2d.solve(a, self.forcing, solver=solver, progress=progress)
        return Dataset(
            inputs=a.astype(np.float32),
            fine=u.astype(np.float32),
            targets={k: restrict(u, k).astype(np.float32) for k in K_VALUES},
            meta={"task": self.name, "seed": seed, "solver": solver},
        )


__all__ = [
    "Darcy", "grf", "upscale", "coarse_fv_solve", "residual", "flux_imbalance", "Physics", "max_principle",
    "compliance_bounds", "compliance_bound", "energy_norm_err", "MAX_PRINCIPLE", "COMPLIANCE_BOUND",
    "ENERGY_NORM_ERR", "MEANS",
]
