"""2D Rayleigh-Benard convection (Boussinesq) in a horizontally periodic layer.

Free-fall units (depth 1, velocity ``sqrt(g alpha Delta d)``, temperature scaled by the
plate difference): ``nu = sqrt(Pr/Ra)``, ``kappa = 1/sqrt(Ra Pr)``; plates ``T = 1``
(bottom) and ``T = 0`` (top), no-slip by default; domain ``[0, aspect) x (0, 1)``.
Fine solver: `tasks.boussinesq.SpectralFD` (Fourier x, staggered 2nd-order FD z, RK4 with
exact discrete projection). Channels (T, u, w) at the cell centres of a uniform grid
(row 0 at the bottom plate), for inputs and outputs alike; a sample maps the developed
state at t to the state at ``t + horizon``. See docs/convection.md for the choices and
their measurements.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from nskernel import K_VALUES, SIZES, CoarseSolver, Dataset, Metric, TaskSpec
from nskernel.grid import restrict
from tasks.convection.boussinesq import PLATES, SpectralFD
from tasks.convection.differentiable import coarse_advance_torch
from tasks.convection.physics import (
    MASS_FLUX,
    NUSSELT_ERR,
    PROFILE_ERR,
    Physics,
    divergence,
    mass_flux_law,
    temperature_residual,
)
from tasks.convection.pointwise import convection_pointwise

ROLLOUT_HORIZONS: tuple[int, ...] = (1, 2, 4, 8)
# Coarse-solver defaults, chosen by measurement (docs/convection.md, "Coarse solvers").
DEFAULT_CS = {"fv": 0.17, "spectral": 0.17}
DEFAULT_CFL = 0.5
# Automatic resolution: ~3.6 cells across the thermal boundary layer 1/(2 Nu) with the
# 2D no-slip fit Nu ~ 0.138 Ra^0.285, and a step that scales with the cell size from the
# measured choice dt = 0.025 at 64 rows (docs/convection.md, "Grid" and "Time step").
CELLS_PER_NU = 7.2
DT_64 = 0.025
# Accuracy target of the fine step: relative L2 error of (T, u, w) after one horizon
# against a dt/8 reference (tests/test_convection.py).
DT_TOL = 1e-6
# The RK4 step may exceed the solver's conservative estimate (`SpectralFD.stable_dt` at
# cfl = 1, ~0.55 of the observed edge) by this factor before generation stops.
DT_GUARD = 1.5

_SIZES: dict[str, dict[str, float | int | bool | str]] = {
    "smoke": {"ra": 1e5, "height": 32, "dt": 0.05, "spinup": 20.0,
              "n_train": 16, "n_test": 8, "n_val": 8, "samples_per_run": 8},
    "small": {"ra": 2e6, "spinup": 40.0, "n_train": 256, "n_test": 64, "n_val": 64, "samples_per_run": 32},
    "paper": {"ra": 1e7, "spinup": 60.0, "n_train": 1024, "n_test": 256, "n_val": 256, "samples_per_run": 64,
              "store_fine": False},
}


def auto_height(ra: float) -> int:
    """Rows for ``ra``: ``CELLS_PER_NU * 0.138 Ra^0.285`` rounded up to a multiple of 16."""
    return 16 * math.ceil(CELLS_PER_NU * 0.138 * ra**0.285 / 16)


@dataclass(frozen=True)
class Convection:
    """Rayleigh-Benard convection; see the module docstring and docs/convection.md.

    ``ra``, ``pr``: Rayleigh and Prandtl numbers; ``aspect``: width / depth. ``height x
    width``: fine cells, multiples of 16 (0 = automatic from ``ra``, square cells); ``dt``:
    fine time step (0 = automatic). ``horizon``: the time span of the sample map. Each run
    (one random start) is spun up for ``spinup`` free-fall times, then yields
    ``samples_per_run`` samples ``spacing`` apart (a multiple of ``horizon``).
    ``backend``/``device``/``workers``/``runs_per_batch``: how the fine solver runs (runs
    are integrated in fixed groups, so a run's round-off never depends on ``n``; data are
    reproducible per backend and device, where round-off differs).
    """

    name: ClassVar[str] = "convection"
    #: the task's own metrics (besides the suite's), declared once
    metrics: ClassVar[tuple[Metric, ...]] = (MASS_FLUX, NUSSELT_ERR, PROFILE_ERR)
    ra: float = 2e6
    pr: float = 1.0
    aspect: float = 4.0
    plates: str = "no-slip"
    height: int = 0
    width: int = 0
    dt: float = 0.0
    horizon: float = 1.0
    spinup: float = 40.0
    spacing: float = 1.0
    samples_per_run: int = 32
    n_train: int = 256
    n_test: int = 64
    n_val: int = 64
    store_fine: bool = True
    backend: str = "numpy"
    device: str = "cpu"
    workers: int = 2
    runs_per_batch: int = 1

    def __post_init__(self) -> None:
        h, w = self.shape
        if h % 16 or w % 16 or h < 16 or w < 16:
            raise ValueError(f"height and width must be positive multiples of 16, got {h}x{w}")
        if self.plates not in PLATES:
            raise ValueError(f"unknown plates {self.plates!r}; valid: {', '.join(PLATES)}")
        if min(self.ra, self.pr, self.aspect, self.horizon) <= 0 or self.spinup < 0 or self.dt < 0:
            raise ValueError("ra, pr, aspect and horizon must be positive; spinup and dt >= 0")
        ratio = self.spacing / self.horizon
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(f"spacing must be a positive multiple of horizon, got {self.spacing}/{self.horizon}")
        if self.samples_per_run < 1 or self.runs_per_batch < 1:
            raise ValueError("samples_per_run and runs_per_batch must be >= 1")
        m = self.samples_per_run
        if self.n_train % m or (self.n_val and ((self.n_train + self.n_test) % m or self.n_val % m)):
            # whole runs where two splits meet, so no run feeds two of training, test, validation
            raise ValueError(f"n_train (and, with a validation split, n_test and n_val) must be multiples of "
                             f"samples_per_run={m}")

    @classmethod
    def sized(cls, size: str) -> Convection:
        if size not in _SIZES:
            raise ValueError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
        return cls(**_SIZES[size])  # type: ignore[arg-type]

    # -- resolved discretisation ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Fine grid ``(H, W)``; automatic: `auto_height` rows, square cells."""
        h = self.height or auto_height(self.ra)
        w = self.width or 16 * max(1, round(self.aspect * h / 16))
        return h, w

    @property
    def time_step(self) -> float:
        """Fine step; automatic: ``DT_64 * 64 / H`` (advective limit ~ cell size)."""
        return self.dt or DT_64 * 64.0 / self.shape[0]

    @property
    def physics(self) -> Physics:
        return Physics(self.ra, self.pr, self.aspect, self.horizon, self.plates)

    # -- solvers ----------------------------------------------------------------------
    def solver(self, k: int = 1, x_scheme: str = "spectral", cs: float = 0.0, backend: str | None = None) -> SpectralFD:
        """The solver on the grid coarsened by ``k`` (``k = 1``: the fine solver)."""
        h, w = self.shape
        return SpectralFD(
            h // k, w // k, self.ra, self.pr, self.aspect, plates=self.plates, x_scheme=x_scheme, cs=cs,
            backend=backend or self.backend, workers=self.workers, device=self.device if backend is None else "cpu",
        )

    def _advance_checked(self, s: SpectralFD, state: object, duration: float, spinup: bool = False) -> object:
        """Fine integration in chunks of at most one horizon with the fixed step, stopping
        loudly when it exceeds the stability guard. During the spin-up (not recorded) the
        step is lowered to the guard instead: the first plumes are up to twice as fast as
        the developed flow."""
        t = 0.0
        while t < duration - 1e-12:
            limit = DT_GUARD * s.stable_dt(state, 1.0)
            dt = min(self.time_step, limit) if spinup else self.time_step
            if not math.isfinite(limit) or dt > limit:
                raise RuntimeError(
                    f"fine step dt={dt:g} exceeds the stability guard {limit:.4g} for Ra={self.ra:g} on "
                    f"{s.h}x{s.w}; set a smaller dt")
            chunk = min(self.horizon, duration - t)
            state = s.advance(state, chunk, dt)
            t += chunk
        return state

    def fine_solve(self, inputs: np.ndarray) -> np.ndarray:
        """Fine states ``(N, 3, H, W)`` float64 at t + horizon from fine states at t."""
        s = self.solver()
        state = s.from_fields(np.asarray(inputs, dtype=np.float64), exact=True)
        return s.to_fields(s.advance(state, self.horizon, self.time_step))

    def coarse_advance(self, state: np.ndarray, k: int, scheme: str, cs: float, cfl: float = DEFAULT_CFL) -> np.ndarray:
        """Advance coarse cell averages ``(N, 3, H/k, W/k)`` by one horizon with the
        ``"fd2"`` (second-order FV) or ``"spectral"`` scheme on grid k, Smagorinsky ``cs``,
        step ``cfl`` times the RK4 stability estimate of each sample's initial state."""
        s = self.solver(k, scheme, cs, backend="numpy")
        out = np.empty(np.shape(state), dtype=np.float64)
        for i in range(out.shape[0]):  # per sample: its own step, independent of the batch
            st = s.from_fields(np.asarray(state[i : i + 1], dtype=np.float64))
            st = s.advance(st, self.horizon, s.stable_dt(st, cfl))
            out[i] = s.to_fields(st)[0]
        return out

    # -- data -------------------------------------------------------------------------
    def _runs(self, runs: list[int], seed: int, n_frames: int) -> np.ndarray:
        """Fine frames ``(len(runs), n_frames, 3, H, W)`` float64, ``horizon`` apart, of the
        given runs after their spin-up; run ``j`` starts from ``rng([seed, j])``."""
        s = self.solver()
        starts = [s.to_fields(s.initial_state(1, np.random.default_rng([seed, j])))[0] for j in runs]
        state = s.from_fields(np.stack(starts), exact=True)
        if self.spinup > 0:
            state = self._advance_checked(s, state, self.spinup, spinup=True)
        frames = [s.to_fields(state)]
        for _ in range(n_frames - 1):
            state = self._advance_checked(s, state, self.horizon)
            frames.append(s.to_fields(state))
        out = np.stack(frames, axis=1)
        if not np.isfinite(out).all():
            raise RuntimeError(f"convection runs {runs} (seed {seed}) diverged")
        return out

    def generate(self, n: int, seed: int, progress: bool = False) -> Dataset:
        """``n`` samples; run ``j = i // samples_per_run`` starts from a random perturbation
        drawn from ``(seed, j)`` and is integrated in the fixed group
        ``j // runs_per_batch``, so sample ``i`` depends on ``(seed, i)`` only."""
        from tqdm.auto import tqdm

        m, stride, g = self.samples_per_run, round(self.spacing / self.horizon), self.runs_per_batch
        n_runs, hmax = math.ceil(n / m), max(ROLLOUT_HORIZONS)
        n_frames = (m - 1) * stride + 1 + hmax
        h, w = self.shape
        inputs = np.empty((n, 3, h, w), dtype=np.float32)
        fine = np.empty((n, 3, h, w), dtype=np.float32) if self.store_fine else None
        targets = {k: np.empty((n, 3, h // k, w // k), dtype=np.float32) for k in K_VALUES}
        rollouts = {k: np.empty((n, 1 + hmax, 3, h // k, w // k), dtype=np.float32) for k in K_VALUES}
        for g0 in tqdm(range(0, n_runs, g), disable=not progress, desc="convection runs"):
            group = list(range(g0, g0 + g))
            frames = self._runs(group, seed, n_frames)
            coarse = {k: restrict(frames, k).astype(np.float32) for k in K_VALUES}
            for a, j in enumerate(group):
                for r in range(min(m, n - j * m)):
                    i, f0 = j * m + r, r * stride
                    inputs[i] = frames[a, f0]
                    if fine is not None:
                        fine[i] = frames[a, f0 + 1]
                    for k in K_VALUES:
                        targets[k][i] = coarse[k][a, f0 + 1]
                        rollouts[k][i] = coarse[k][a, f0 : f0 + 1 + hmax]
        return Dataset(
            inputs=inputs, targets=targets, fine=fine, rollouts=rollouts,
            meta={"task": self.name, "seed": seed, "samples_per_run": m, "horizon": self.horizon,
                  "run_of_sample": [i // m for i in range(n)], "solver": self.fine_solver_name},
        )

    @property
    def fine_solver_name(self) -> str:
        h, w = self.shape
        return f"fourier-fd2-rk4-{h}x{w}-dt{self.time_step:.4g}-{self.backend}"

    # -- spec -------------------------------------------------------------------------
    def with_threads(self, threads: int) -> Convection:
        return dataclasses.replace(self, workers=threads)

    def spec(self) -> TaskSpec:
        ph, aspect = self.physics, self.aspect

        def solver(scheme: str) -> CoarseSolver:
            x_scheme = "fd2" if scheme == "fv" else "spectral"

            def advance(state: np.ndarray, k: int, cs: float = DEFAULT_CS[scheme],
                        cfl: float = DEFAULT_CFL) -> np.ndarray:
                return self.coarse_advance(state, k, x_scheme, cs, cfl)

            def solve(inputs: np.ndarray, k: int, cs: float = DEFAULT_CS[scheme],
                      cfl: float = DEFAULT_CFL) -> np.ndarray:
                return advance(restrict(np.asarray(inputs, dtype=np.float64), k), k, cs, cfl)

            def differentiable(state: Any, closure: Callable[[Any], Any] | None = None, steps: int | None = None,
                               cs: float = DEFAULT_CS[scheme], cfl: float = DEFAULT_CFL) -> tuple[Any, int]:
                return coarse_advance_torch(self, state, x_scheme, cs, cfl, closure, steps)

            what = ("second-order conservative FD (central in x, staggered in z)" if scheme == "fv"
                    else "the fine scheme (Fourier x, staggered FD z)")
            return CoarseSolver(solve=solve, advance=advance, params={"cs": DEFAULT_CS[scheme], "cfl": DEFAULT_CFL},
                                differentiable=differentiable,
                                description=f"{what} on the k-coarse grid + Smagorinsky eddy viscosity cs")

        return TaskSpec(
            name=self.name,
            fine_shape=self.shape,
            in_channels=3,
            out_channels=3,
            in_names=("T", "u", "w"),
            out_names=("T", "u", "w"),
            boundary=f"periodic-x/{self.plates}-z",
            time_dependent=True,
            domain=(1.0, self.aspect),
            residual=lambda u, inputs, k: temperature_residual(u, inputs, k, ph),
            divergence=lambda u, k: divergence(u, aspect),
            laws=mass_flux_law,
            coarse_solvers={"fv": solver("fv"), "spectral": solver("spectral")},
            fine_solve=self.fine_solve,
            fine_solver_name=self.fine_solver_name,
            pointwise=convection_pointwise(self),
            # Horizontally periodic Boussinesq flow is invariant under x -> -x with u -> -u.
            symmetry="flip_x",
            in_parity=(1, -1, 1),
            out_parity=(1, -1, 1),
            physics=ph,
            rollout_horizons=ROLLOUT_HORIZONS,
            climatology_axes=(-1,),  # x is periodic: the mean state is a profile in z
        )


__all__ = ["Convection", "ROLLOUT_HORIZONS", "DT_TOL", "auto_height"]
