"""A task from outside the suite, loaded by the tests as the external spec
``tests.plugin_tasks:Heat`` (and through a faked entry point): it exercises the plug-in
path of tasks the way `tests.plugins` does for methods.

`Heat` is tiny and exact: the periodic heat equation ``u_t = nu * Laplacian(u)`` on the
unit square, from a random smooth temperature ``u0`` (the input) to ``u(t)`` (the output),
solved in closed form by two FFTs. Its classical coarse solver (family ``"fv"``, so
``coarse_fv`` runs on it) is the 5-point finite-difference semi-discretisation on the
k-coarse grid, integrated exactly in time, from the block means of ``u0``. Its own metric,
``heat_mean_drift``, scores the one conservation law: the domain mean of ``u`` never
changes (``R_k`` keeps means, so the truth scores 0 at every k, and so does the coarse
solver, whose zero mode is undamped too).

The deliberately broken task classes at the end are refused by `bench.names`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy as np

from nskernel import K_VALUES, SIZES, CoarseSolver, Dataset, Metric, TaskSpec, restrict


def _decay(shape: tuple[int, int], nu: float, t: float, finite_difference: bool) -> np.ndarray:
    """``exp(-nu t lambda)`` on the ``rfft2`` modes of a periodic ``shape`` grid of the unit
    square: ``lambda`` the Laplacian's eigenvalue, exact or of the 5-point stencil."""
    ny, nx = shape
    ky = np.fft.fftfreq(ny, d=1.0 / ny)[:, None]
    kx = np.fft.rfftfreq(nx, d=1.0 / nx)[None, :]
    if finite_difference:
        lam = 4.0 * ny**2 * np.sin(np.pi * ky / ny) ** 2 + 4.0 * nx**2 * np.sin(np.pi * kx / nx) ** 2
    else:
        lam = (2.0 * np.pi) ** 2 * (ky**2 + kx**2)
    return np.exp(-nu * t * lam)


def _evolve(u0: np.ndarray, nu: float, t: float, finite_difference: bool) -> np.ndarray:
    u = np.asarray(u0, dtype=np.float64)
    shape = u.shape[-2:]
    return np.fft.irfft2(np.fft.rfft2(u) * _decay(shape, nu, t, finite_difference), s=shape)


def heat_fine(inputs: np.ndarray, nu: float, t: float) -> np.ndarray:
    """The exact solution ``u(t)`` of ``inputs = u0 (N, 1, H, W)``, float64."""
    return _evolve(inputs, nu, t, finite_difference=False)


def heat_coarse_fd(inputs: np.ndarray, k: int, nu: float, t: float) -> np.ndarray:
    """The 5-point scheme on the k-coarse grid from the block means of the fine ``u0``,
    exact in time; ``(N, 1, H/k, W/k)`` float64."""
    return _evolve(restrict(np.asarray(inputs, dtype=np.float64), k), nu, t, finite_difference=True)


def mean_drift(pred: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """``|mean(pred) - mean(u0)| / std(u0)`` per sample: the change of the conserved domain
    mean, in units of the initial field's variation. 0 for the truth at every k."""
    p = np.asarray(pred, dtype=np.float64).mean(axis=(1, 2, 3))
    x = np.asarray(inputs, dtype=np.float64)
    return np.abs(p - x.mean(axis=(1, 2, 3))) / x.std(axis=(1, 2, 3))


HEAT_MEAN_DRIFT = Metric(
    "heat_mean_drift", "change of the conserved domain mean of the temperature, in units of the initial "
    "field's standard deviation (0 for the truth)",
    fn=lambda p, y, x, k, spec: mean_drift(p.mean, x), group="physics", headline=True)

_SIZES: dict[str, dict[str, int]] = {
    "smoke": {"resolution": 32, "n_train": 16, "n_test": 8, "n_val": 8},
    "small": {"resolution": 64, "n_train": 64, "n_test": 16, "n_val": 16},
    "paper": {"resolution": 128, "n_train": 512, "n_test": 64, "n_val": 64},
}


@dataclass(frozen=True)
class Heat:
    """Periodic heat equation: a smooth random temperature diffused for a time t."""

    name: ClassVar[str] = "heat"
    metrics: ClassVar[tuple[Metric, ...]] = (HEAT_MEAN_DRIFT,)
    resolution: int = 32
    nu: float = 1.0
    t: float = 1e-3
    n_train: int = 16
    n_test: int = 8
    n_val: int = 8

    def __post_init__(self) -> None:
        if self.resolution < 16 or self.resolution % 16:
            raise ValueError(f"resolution must be a positive multiple of 16, got {self.resolution}")
        if not (self.nu > 0 and self.t > 0):
            raise ValueError(f"nu and t must be positive, got nu={self.nu}, t={self.t}")

    @classmethod
    def sized(cls, size: str) -> Heat:
        if size not in _SIZES:
            raise ValueError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
        return cls(**_SIZES[size])

    def with_threads(self, threads: int) -> Heat:
        return self  # NumPy FFTs: one thread whatever is asked

    def spec(self) -> TaskSpec:
        n = self.resolution
        return TaskSpec(
            name=self.name, fine_shape=(n, n), in_channels=1, out_channels=1, in_names=("u0",), out_names=("u",),
            boundary="periodic",
            coarse_solvers={"fv": CoarseSolver(solve=partial(heat_coarse_fd, nu=self.nu, t=self.t),
                                               description="5-point scheme on the k-coarse grid, exact in time")},
            fine_solve=partial(heat_fine, nu=self.nu, t=self.t), fine_solver_name="fft-exact",
            symmetry="p4m",  # the periodic square's Laplacian commutes with its rotations and reflections
        )

    def initial(self, i: int, seed: int) -> np.ndarray:
        """``u0`` of sample ``i``: filtered white noise of unit spread plus a mean in [0.5, 1.5)."""
        rng = np.random.default_rng([seed, i])
        n = self.resolution
        w = rng.standard_normal((n, n))
        k2 = np.fft.fftfreq(n, d=1.0 / n)[:, None] ** 2 + np.fft.rfftfreq(n, d=1.0 / n)[None, :] ** 2
        g = np.fft.irfft2(np.fft.rfft2(w) / (1.0 + k2 / 4.0), s=(n, n))
        return (g - g.mean()) / g.std() + rng.uniform(0.5, 1.5)

    def generate(self, n: int, seed: int, progress: bool = False) -> Dataset:
        """``n`` samples; sample ``i`` depends on ``(seed, i)`` only."""
        u0 = np.stack([self.initial(i, seed)[None] for i in range(n)]) if n else np.empty((0, 1, 1, 1))
        u = heat_fine(u0, self.nu, self.t)
        return Dataset(inputs=u0.astype(np.float32), fine=u.astype(np.float32),
                       targets={k: restrict(u, k).astype(np.float32) for k in K_VALUES},
                       meta={"task": self.name, "seed": seed})


# --------------------------------------------------------------------------- broken tasks
@dataclass
class NotATask:
    """Not frozen, no metrics, no generate and no with_threads."""

    name: ClassVar[str] = "not_a_task"
    n_train: int = 1
    n_test: int = 1
    n_val: int = 0

    @classmethod
    def sized(cls, size: str) -> NotATask:
        return cls()

    def spec(self) -> TaskSpec:
        raise NotImplementedError


@dataclass(frozen=True)
class NamedDarcy(Heat):
    """A task that takes a built-in task's name (which keys its data files)."""

    name: ClassVar[str] = "darcy"


@dataclass(frozen=True)
class ClaimsRelL2(Heat):
    """A task whose own metric takes the name of one of the suite's."""

    name: ClassVar[str] = "heat_rel"
    metrics: ClassVar[tuple[Metric, ...]] = (Metric("rel_l2", "a second rel_l2", fn=HEAT_MEAN_DRIFT.fn),)
