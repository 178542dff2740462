"""2D forced turbulence: periodic incompressible Navier-Stokes in vorticity form.

    d(omega)/dt + u . grad(omega) = nu Lap(omega) - alpha omega + f,   -Lap psi = omega,
    u = (d psi/dy, -d psi/dx)  on [0, 2 pi)^2,   f = -F k_f cos(k_f y)

(Kolmogorov forcing: the curl of the body force F sin(k_f y) e_x; linear drag alpha
removes the energy of the inverse cascade so long runs are statistically stationary).
Re = U_rms L_f / nu with U_rms = sqrt(<|u|^2>) and the forcing wavelength L_f = 2 pi / k_f.

A sample is the fine vorticity omega(t) on a stationary trajectory; targets are
R_k omega(t + dT); rollouts hold R_k omega(t + j dT), j = 0..``rollout`` (8 by default). The fine solver is the
pseudo-spectral integrating-factor RK4 of `tasks.turbulence_solver`; the coarse
solvers are an Arakawa finite-difference scheme ("fv") and the same spectral scheme
with a Smagorinsky eddy viscosity ("spectral"). See docs/turbulence.md.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from nskernel import K_VALUES, SIZES, Dataset, Metric, TaskSpec
from nskernel.grid import restrict
from tasks.numerics.spectral import PeriodicGrid, rfft_weights
from tasks.turbulence import metrics as tm
from tasks.turbulence.coarse import coarse_solvers
from tasks.turbulence.pointwise import turbulence_pointwise
from tasks.turbulence.solver import VorticitySolver, energy_enstrophy, kolmogorov_forcing

# U_rms measured in stationary runs (kf=4, F=1, drag=0.1), used to set nu from Re;
# the measured Re of every dataset is stored in Dataset.meta (docs/turbulence.md).
U_REF = 1.4
# eta * sqrt(Re) measured at Re 1e3 and 1e4 (eta the enstrophy dissipation scale):
# predicts the grid a Re needs before any run; the generator then checks the real one.
ETA_SQRT_RE = 1.36
# Largest RK4 CFL number whose error in R_4 omega(t + dT), relative L2 against a 4x
# smaller step, stays below TIME_TOL with a 2x margin at every preset (docs, tests).
CFL_FINE = 0.6
TIME_TOL = 1e-4
ROLLOUT_STEPS = 8  # the default rollout length, in horizons

_SIZES: dict[str, dict[str, Any]] = {
    # 4 snapshots per trajectory at smoke and small (64 independent training trajectories
    # at small, 4x the 16 of sessions 1-8, for ~2x the generation cost: docs/turbulence.md)
    "smoke": {"n_train": 16, "n_test": 8, "n_val": 8, "snapshots": 4, "spinup": 10.0},
    "small": {"n_train": 256, "n_test": 64, "n_val": 64, "snapshots": 4, "spinup": 20.0},
    "paper": {"n_train": 1024, "n_test": 256, "n_val": 256, "snapshots": 8, "spinup": 20.0},
}
# (k_max eta margin, smallest grid) per size for the automatic resolution
_GRID_RULE: dict[str, tuple[float, int]] = {"smoke": (1.1, 64), "small": (1.1, 128), "paper": (1.5, 256)}


def _smooth16(n_min: float) -> int:
    """Smallest multiple of 16 >= n_min whose only prime factors are 2, 3, 5 (FFT-friendly)."""
    n = 16 * max(1, int(np.ceil(n_min / 16)))
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 16


@dataclass(frozen=True)
class Turbulence:
    """Forced 2D turbulence at Reynolds number ``re`` (see the module docstring).

    ``resolution = 0`` picks the smallest FFT-friendly grid (multiple of 16) whose
    predicted ``k_max eta`` has the size's margin; ``nu = 0`` sets ``nu = U_REF L_f / re``.
    Samples: ``snapshots`` per trajectory, ``gap`` horizons apart (``spacing``, or with
    ``spacing = 0`` the fewest horizons that span one time unit, about a large-eddy
    turnover), after ``spinup`` time units from a Gaussian random field. ``backend``: "auto", "fftw", "scipy" or
    "torch"; ``device`` and ``threads`` are explicit (fixed per dataset because a chaotic
    flow amplifies round-off differences between back-ends, docs/turbulence.md).
    """

    name: ClassVar[str] = "turbulence"
    #: the task's own metrics (besides the suite's), declared once
    metrics: ClassVar[tuple[Metric, ...]] = (tm.CIRCULATION, tm.SPECTRUM_ERR)
    re: float = 1e3
    size: str = "small"
    resolution: int = 0
    nu: float = 0.0
    n_train: int = 256
    n_test: int = 64
    n_val: int = 64
    kf: int = 4
    force: float = 1.0
    drag: float = 0.1
    # dT = 0.25 (a quarter turnover) by measurement (issue #18, docs/turbulence.md "Horizon"):
    # at dT = 1 the filtered target is decorrelated from the input and every learned method
    # scored at the no-skill level; `turbulence:horizon=1` stays as the hard variant
    horizon: float = 0.25
    cfl: float = CFL_FINE
    spinup: float = 20.0
    snapshots: int = 4
    spacing: int = 0
    min_kmax_eta: float = 1.0
    # rollout length in horizons (scored at 1, 2, 4, ... and at ``rollout``); the Kochkov
    # variant needs more than 8 x 0.25 time units to see when the best solvers decorrelate
    rollout: int = ROLLOUT_STEPS
    backend: str = "auto"
    device: str = "cpu"
    threads: int = 2
    batch: int = 1

    def __post_init__(self) -> None:
        if self.size not in _GRID_RULE:
            raise ValueError(f"unknown size {self.size!r}; valid: {', '.join(SIZES)}")
        n = self.n
        if n % 16:
            raise ValueError(f"resolution must be a multiple of 16, got {n}")
        if self.snapshots < 1 or any(n % self.snapshots for n in (self.n_train, self.n_test, self.n_val)):
            # whole trajectories per split, so no trajectory feeds two of training, test and validation
            raise ValueError(f"n_train={self.n_train}, n_test={self.n_test} and n_val={self.n_val} must be "
                             f"multiples of snapshots={self.snapshots}")
        if self.rollout < 1:
            raise ValueError(f"rollout must be at least 1 horizon, got {self.rollout}")
        if self.spacing < 0:
            raise ValueError(f"spacing must be >= 0 (0: one time unit between samples), got {self.spacing}")
        if self.re <= 0 or self.horizon <= 0 or self.cfl <= 0:
            raise ValueError("re, horizon and cfl must be positive")

    # -- derived parameters -------------------------------------------------------------
    @classmethod
    def sized(cls, size: str) -> Turbulence:
        if size not in _SIZES:
            raise ValueError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
        return cls(size=size, **_SIZES[size])

    @property
    def rollout_horizons(self) -> tuple[int, ...]:
        """The scored rollout horizons: powers of two below ``rollout``, and ``rollout``."""
        return tuple(sorted({*(2**i for i in range(self.rollout.bit_length()) if 2**i < self.rollout), self.rollout}))

    @property
    def forcing_scale(self) -> float:
        """``L_f = 2 pi / k_f``, the length in ``Re``."""
        return 2 * np.pi / self.kf

    @property
    def gap(self) -> int:
        """Horizons between a trajectory's samples: ``spacing``, or (0) the fewest that span
        one time unit (the anomaly correlation one time unit apart is 0.37, docs)."""
        return self.spacing if self.spacing else max(1, math.ceil(1.0 / self.horizon - 1e-9))

    @property
    def viscosity(self) -> float:
        return self.nu if self.nu > 0 else U_REF * self.forcing_scale / self.re

    @property
    def n(self) -> int:
        """Fine grid size (``resolution`` or the automatic choice)."""
        if self.resolution:
            return self.resolution
        margin, n_min = _GRID_RULE[self.size]
        return _smooth16(max(n_min, 3.0 * margin * self.min_kmax_eta / self.predicted_eta() + 1))

    def predicted_eta(self) -> float:
        """Dissipation scale from the measured ``eta sqrt(Re)`` at this ``nu``."""
        re = U_REF * self.forcing_scale / self.viscosity
        return ETA_SQRT_RE / np.sqrt(re)

    @property
    def flow(self) -> tm.Flow:
        return tm.Flow(self.viscosity, self.drag, self.force, self.kf, self.horizon)

    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        if self.device != "cpu":
            return "torch"
        from tasks.turbulence import kernels as tk

        return "fftw" if tk.available() else "scipy"

    def solver(self, worker: int = 0) -> VorticitySolver:
        """The fine solver of worker thread ``worker`` (cached: FFT plans and buffers are
        reused; each worker owns one because the buffers hold stage data)."""
        return _fine_solver(self.n, self.viscosity, self.drag, self.force, self.kf, self.resolved_backend(),
                            self.device, worker)

    def _map(self, fn: Callable[[VorticitySolver, Any], Any], items: list[Any]) -> list[Any]:
        """``[fn(solver, item)]`` with items spread over ``threads`` worker threads.

        Parallelism is across independent items, each on a single-threaded FFT: FFTW's
        own threads synchronise twice per transform and were 15-100x slower than one
        thread on a loaded 2-core machine (docs/turbulence.md), and per-item results stay
        bitwise independent of the thread count.
        """
        workers = 1 if self.device != "cpu" else max(1, min(self.threads, len(items)))
        solvers = [self.solver(w) for w in range(workers)]
        if workers == 1:
            return [fn(solvers[0], it) for it in items]
        from concurrent.futures import ThreadPoolExecutor

        def run(w: int) -> list[tuple[int, Any]]:
            return [(i, fn(solvers[w], items[i])) for i in range(w, len(items), workers)]

        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run, range(workers)))
        out: list[Any] = [None] * len(items)
        for part in parts:
            for i, r in part:
                out[i] = r
        return out

    # -- fine solver ------------------------------------------------------------------
    def fine_solve(self, inputs: np.ndarray) -> np.ndarray:
        """Fine omega ``(N, 1, n, n)`` at ``t + dT`` from the fine state ``inputs`` at t."""
        x = np.asarray(inputs, dtype=np.float64)[:, 0]
        chunks = np.array_split(x, max(1, min(len(x), self.threads if self.device == "cpu" else 1)))

        def solve(s: VorticitySolver, om: np.ndarray) -> np.ndarray:
            w, _ = s.advance(s.to_spectral(om), self.horizon, self.cfl)
            return _to_numpy(s.to_physical(w))

        return np.concatenate(self._map(solve, chunks))[:, None]

    def kmax_eta(self, omega: np.ndarray) -> np.ndarray:
        """``k_max eta`` per sample of fine ``(B, n, n)`` omega: ``eta = (nu^3/beta)^(1/6)``,
        ``beta = nu <|grad omega|^2>`` (viscous enstrophy dissipation), ``k_max`` the
        largest de-aliased wavenumber."""
        n = omega.shape[-1]
        g = PeriodicGrid.square(n)
        wh = np.fft.rfft2(omega) / (n * n)
        beta = self.viscosity * (np.abs(wh) ** 2 * rfft_weights(n) * g.k2()).sum((-2, -1))
        return g.kmax_dealiased() * (self.viscosity**3 / beta) ** (1.0 / 6.0)

    # -- data -------------------------------------------------------------------------
    def spec(self) -> TaskSpec:
        n, flow = self.n, self.flow
        return TaskSpec(
            name=self.name,
            fine_shape=(n, n),
            in_channels=1,
            out_channels=1,
            in_names=("omega",),
            out_names=("omega",),
            boundary="periodic",
            time_dependent=True,
            domain=(2 * np.pi, 2 * np.pi),
            residual=lambda u, inputs, k: tm.residual(u, inputs, k, flow),
            # The residual shoots backwards over dT/2 without eddy viscosity, amplifying
            # mode |xi| by exp(nu |xi|^2 dT/2): ~90x at the small grid's cutoff (|xi| = 64,
            # nu = 2.2e-3), ~1.3x at k=4's (|xi| = 16). It also runs ~n/cfl solver steps
            # through autograd: 4x fewer steps on a 16x smaller grid at k=4.
            physics_k=min(K_VALUES),
            divergence=None,  # vorticity form: divergence-free by construction
            laws=tm.circulation_law,
            coarse_solvers=coarse_solvers(self),
            fine_solve=self.fine_solve,
            fine_solver_name=self.fine_solver_name(),
            pointwise=turbulence_pointwise(self),
            # Kolmogorov forcing cos(kf y) breaks rotations and plain reflections (its
            # symmetries need a half-period shift in y), so no group is claimed.
            symmetry="none",
            physics=flow,
            rollout_horizons=self.rollout_horizons,
            climatology_axes=(-1,),  # forcing cos(k_f y) varies along rows only
        )

    def with_threads(self, threads: int) -> Turbulence:
        return dataclasses.replace(self, threads=threads)

    def fine_solver_name(self) -> str:
        s = self.solver()
        kind = "fused" if s.fused else s.fft.name
        return f"spectral-ifrk4-{kind}-n{self.n}-cfl{self.cfl:g}-{self.threads}threads"

    def initial_field(self, rng: np.random.Generator) -> np.ndarray:
        """Gaussian random vorticity, spectrum ~ k^2 exp(-(k/k_f)^2), rms 4 (close to the
        stationary value, which shortens the transient)."""
        g = PeriodicGrid.square(self.n)
        k = np.sqrt(g.k2())
        amp = k * np.exp(-0.5 * (k / self.kf) ** 2) * g.dealias_mask()
        wh = (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)) * amp
        om = np.fft.irfft2(wh, s=(self.n, self.n))
        return om * (4.0 / om.std())

    def trajectories(self, s: VorticitySolver, first: int, count: int, seed: int) -> dict[Any, Any]:
        """Trajectories ``first..first+count-1`` computed by solver ``s``, sampled every
        horizon after the spin-up: ``{"fine": (count, L, n, n), k: (count, L, n/k, n/k)
        for k in K_VALUES}`` float32 (``R_k`` taken in float64), ``L = (snapshots - 1) *
        gap + rollout + 1``, and ``"steps"``, the number of time steps."""
        om0 = np.stack([self.initial_field(np.random.default_rng([seed, j])) for j in range(first, first + count)])
        w = s.to_spectral(om0)
        steps, t = 0, 0.0
        while t < self.spinup - 1e-9:  # CFL re-evaluated every horizon
            w, ns = s.advance(w, min(self.horizon, self.spinup - t), self.cfl)
            t, steps = t + self.horizon, steps + ns
        length = (self.snapshots - 1) * self.gap + self.rollout + 1
        out: dict[Any, Any] = {"fine": np.empty((count, length, self.n, self.n), np.float32)}
        out.update({k: np.empty((count, length, self.n // k, self.n // k), np.float32) for k in K_VALUES})
        for j in range(length):
            if j:
                w, ns = s.advance(w, self.horizon, self.cfl)
                steps += ns
            om = _to_numpy(s.to_physical(w))
            out["fine"][:, j] = om
            for k in K_VALUES:
                out[k][:, j] = restrict(om, k)
        out["steps"] = steps
        return out

    def generate(self, n: int, seed: int, progress: bool = False) -> Dataset:
        """``n`` samples. Sample ``i`` is snapshot ``i % snapshots`` of trajectory
        ``i // snapshots``, whose initial field comes from ``default_rng([seed, j])``;
        trajectories run in fixed groups of ``batch``, so a smaller dataset is a prefix
        of a larger one."""
        kmax_eta = PeriodicGrid.square(self.n).kmax_dealiased() * self.predicted_eta()
        if kmax_eta < self.min_kmax_eta:
            raise ValueError(
                f"grid {self.n}^2 under-resolves Re={self.re:g}: predicted k_max*eta={kmax_eta:.2f} < "
                f"{self.min_kmax_eta} (use resolution=0 for the automatic grid)"
            )
        t0 = time.perf_counter()
        n_traj = -(-n // self.snapshots)
        n_groups = -(-n_traj // self.batch)

        def group(s: VorticitySolver, g: int) -> dict[Any, Any]:
            out = self.trajectories(s, g * self.batch, self.batch, seed)
            if progress:
                el = time.perf_counter() - t0
                print(f"turbulence: trajectory group {g + 1}/{n_groups} done ({el:.0f} s)", flush=True)
            return out

        results = self._map(group, list(range(n_groups)))
        traj = {key: np.concatenate([r[key] for r in results])[:n_traj] for key in ["fine", *K_VALUES]}
        idx = np.arange(n)
        j, m = idx // self.snapshots, (idx % self.snapshots) * self.gap
        window = m[:, None] + np.arange(self.rollout + 1)  # horizons 0..rollout of each sample
        # every sample's input state, 64 at a time (paper: 1536 fields of 256^2 in float64 is 0.8 GB)
        eta_parts, e_parts = [], []
        for i in range(0, n, 64):
            states = traj["fine"][j[i:i + 64], m[i:i + 64]].astype(np.float64)
            eta_parts.append(self.kmax_eta(states))
            e_parts.append(energy_enstrophy(states)[0])
        eta = np.concatenate(eta_parts)
        if eta.mean() < self.min_kmax_eta:
            raise ValueError(f"under-resolved run: measured k_max*eta={eta.mean():.2f} < {self.min_kmax_eta}")
        if eta.min() < self.min_kmax_eta:
            warnings.warn(f"a sample has k_max*eta={eta.min():.2f} < {self.min_kmax_eta}", stacklevel=2)
        # U_rms over every sample (issue #18: the former first-snapshot value is not the mean)
        urms = np.sqrt(2 * np.concatenate(e_parts))
        u_rms = float(np.sqrt(np.mean(urms**2)))
        meta = {
            "task": self.name, "seed": seed, "solver": self.fine_solver_name(), "nu": self.viscosity,
            # both conventions (docs/turbulence.md): U_rms L_f / nu, and Kochkov et al.'s 1 / nu
            "re_measured": float(u_rms * self.forcing_scale / self.viscosity), "re_unit": float(1.0 / self.viscosity),
            "u_rms": u_rms, "kmax_eta_mean": float(eta.mean()), "kmax_eta_min": float(eta.min()),
            "turnover_time": float(self.forcing_scale / u_rms), "steps": int(sum(r["steps"] for r in results)),
            "generate_s": round(time.perf_counter() - t0, 2), "trajectories": int(n_traj),
        }
        return Dataset(
            inputs=traj["fine"][j, m][:, None],
            fine=traj["fine"][j, m + 1][:, None],
            targets={k: traj[k][j, m + 1][:, None] for k in K_VALUES},
            rollouts={k: traj[k][j[:, None], window][:, :, None] for k in K_VALUES},
            meta=meta,
        )


@lru_cache(maxsize=16)
def _fine_solver(n: int, nu: float, drag: float, force: float, kf: int, backend: str, device: str,
                 worker: int) -> VorticitySolver:
    """One solver per worker thread, single-threaded FFTs (see `Turbulence._map`)."""
    return VorticitySolver(n, nu, drag, kolmogorov_forcing(n, force, kf), backend=backend, threads=1, device=device)


def _to_numpy(x: Any) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.detach().cpu().numpy()


__all__ = ["Turbulence", "U_REF", "CFL_FINE", "TIME_TOL"]
