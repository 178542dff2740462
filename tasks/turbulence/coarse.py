"""Classical coarse-grid solvers of the turbulence task (``TaskSpec.coarse_solvers``).

Both start from ``R_k omega(t)`` on the ``n/k`` grid and advance one horizon ``dT``:

* ``"fv"``: second-order conservative finite differences, Arakawa Jacobian (conserves
  discrete energy and enstrophy), 5-point Laplacian, FFT Poisson solve, RK4;
  cell-averaged forcing (`tasks.arakawa`).
* ``"spectral"``: the fine pseudo-spectral scheme on the ``n/k`` grid with a Smagorinsky
  eddy viscosity ``cs``; with ``deconvolve`` the cell averages are first turned into
  point values by dividing by the box filter's transfer function
  ``sinc(k_x h/2) sinc(k_y h/2)``, and the result is filtered back.
* ``"dns"``: the fine solver itself (same scheme, 2/3 de-aliasing, same kernels: fused
  FFTW steps on CPU) on the ``n/k`` grid, no subgrid model, from the deconvolved cell
  averages like ``"spectral"``; samples spread over the task's threads like the fine
  solve. The classical error-cost ladder (`bench.ladder`) runs it from the k grid up to
  the fine grid, where it is the fine solver.
* ``"floor"``: the coarse-information floor, a reference rather than a competitor: the
  fine solver on the fine grid from the exactly filtered state (`unfilter`, the
  band-limited inverse of ``R_k``), restricted again. It costs a fine solve; what it
  misses is only what ``R_k omega(t)`` does not determine (issue #18, docs/turbulence.md).

``"spectral"`` is also published in torch (`spectral_advance_torch`, the
``differentiable`` entry of its `CoarseSolver`): the same steps, differentiable, with a
hook for a learned correction after every step (the `closure` method).

Defaults were chosen by measurement on small data (docs/turbulence.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from nskernel import CoarseSolver
from nskernel.grid import restrict
from tasks.numerics.spectral import box_transfer, lawson_rk4, unfilter
from tasks.turbulence.arakawa import ArakawaSolver
from tasks.turbulence.solver import VorticitySolver, kolmogorov_forcing

FV_CFL = 0.5
SPECTRAL_CFL = 0.5
SMAGORINSKY_CS = 0.1


@lru_cache(maxsize=32)
def _fv_solver(n: int, nu: float, drag: float, force: float, kf: int) -> ArakawaSolver:
    from tasks.turbulence.metrics import Flow

    return ArakawaSolver(n, nu, drag, Flow(nu, drag, force, kf, 1.0).forcing_avg(n))


@lru_cache(maxsize=32)
def _spectral_solver(n: int, nu: float, drag: float, force: float, kf: int, cs: float) -> VorticitySolver:
    # 3/2-rule padding: a 2/3 truncation would discard a third of the few coarse modes;
    # one FFT thread: coarse grids are too small for threads to pay
    return VorticitySolver(n, nu, drag, kolmogorov_forcing(n, force, kf), backend="scipy", threads=1,
                           smagorinsky=cs, dealias="pad")


@lru_cache(maxsize=64)
def _dns_solver(n: int, nu: float, drag: float, force: float, kf: int, backend: str, device: str,
                worker: int) -> VorticitySolver:
    return VorticitySolver(n, nu, drag, kolmogorov_forcing(n, force, kf), backend=backend, threads=1, device=device)


def dns_advance(state: np.ndarray, task: Any, deconvolve: bool = True) -> np.ndarray:
    """Advance coarse ``(N, 1, m, m)`` omega by one horizon with the fine solver on the m grid."""
    w = np.asarray(state, dtype=np.float64)[:, 0]
    m = w.shape[-1]
    box = box_transfer(m)
    backend = task.resolved_backend()

    def solve(worker: int, chunk: np.ndarray) -> np.ndarray:
        s = _dns_solver(m, task.viscosity, task.drag, task.force, task.kf, backend, task.device, worker)
        if deconvolve:
            chunk = np.fft.irfft2(np.fft.rfft2(chunk) / box, s=(m, m))
        out, _ = s.advance(s.to_spectral(chunk), task.horizon, task.cfl)
        out = s.to_physical(out)
        out = out if isinstance(out, np.ndarray) else out.detach().cpu().numpy()
        return np.fft.irfft2(np.fft.rfft2(out) * box, s=(m, m)) if deconvolve else out

    workers = 1 if task.device != "cpu" else max(1, min(task.threads, len(w)))
    chunks = np.array_split(w, workers)
    if workers == 1:
        return solve(0, w)[:, None]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(solve, range(workers), chunks))
    return np.concatenate(parts)[:, None]


def fv_advance(state: np.ndarray, task: Any, cfl: float = FV_CFL) -> np.ndarray:
    """Advance coarse ``(N, 1, m, m)`` omega by one horizon with the Arakawa scheme."""
    w = np.asarray(state, dtype=np.float64)[:, 0]
    s = _fv_solver(w.shape[-1], task.viscosity, task.drag, task.force, task.kf)
    return s.advance(w, task.horizon, cfl)[:, None]


def spectral_advance(
    state: np.ndarray, task: Any, cs: float = SMAGORINSKY_CS, cfl: float = SPECTRAL_CFL, deconvolve: bool = True
) -> np.ndarray:
    """Advance coarse ``(N, 1, m, m)`` omega by one horizon with the spectral LES."""
    w = np.asarray(state, dtype=np.float64)[:, 0]
    m = w.shape[-1]
    s = _spectral_solver(m, task.viscosity, task.drag, task.force, task.kf, float(cs))
    wh = np.fft.rfft2(w)
    box = box_transfer(m)
    if deconvolve:
        wh = wh / box
    wh, _ = s.advance(wh * s._ops["mask"], task.horizon, cfl)
    if deconvolve:
        wh = wh * box
    return np.fft.irfft2(wh, s=(m, m))[:, None]


@lru_cache(maxsize=32)
def _torch_spectral_solver(n: int, nu: float, drag: float, force: float, kf: int, cs: float,
                           device: str) -> VorticitySolver:
    return VorticitySolver(n, nu, drag, kolmogorov_forcing(n, force, kf), backend="torch", threads=1,
                           smagorinsky=cs, dealias="pad", device=device)


def spectral_advance_torch(
    state: Any, task: Any, closure: Callable[[Any], Any] | None = None, steps: int | None = None,
    cs: float = SMAGORINSKY_CS, cfl: float = SPECTRAL_CFL, deconvolve: bool = True,
) -> tuple[Any, int]:
    """`spectral_advance` in torch (float64), differentiable in ``state (B, 1, m, m)`` and
    in ``closure``: after every IF-RK4 step of size ``dt`` the state gains
    ``dt * closure(omega)`` less its domain mean (a subgrid term conserves circulation),
    ``omega (B, 1, m, m)`` the physical state at the step's start (the solver's point
    values, i.e. deconvolved). Returns the cell averages one horizon
    later and the number of steps (``steps``, or the CFL rule on the batch)."""
    import torch

    w = state[:, 0].to(torch.float64)
    m = w.shape[-1]
    s = _torch_spectral_solver(m, task.viscosity, task.drag, task.force, task.kf, float(cs), str(w.device))
    box = torch.as_tensor(box_transfer(m), device=w.device)
    mask = s._t["mask"]
    wh = torch.fft.rfft2(w)
    if deconvolve:
        wh = wh / box
    wh = wh * mask
    if steps is None:
        with torch.no_grad():
            rate = float(s.cfl_rate(wh).max())
        steps = max(1, math.ceil(task.horizon * rate / cfl - 1e-9))
    dt = task.horizon / steps
    e2, e1 = s.factors(dt)
    # A subgrid term is the divergence of a stress: its domain mean is zero on the periodic
    # square, so the closure's (0, 0) mode is dropped and it conserves circulation exactly.
    closure_mask = mask.clone()
    closure_mask[0, 0] = 0.0
    for _ in range(steps):
        nxt = lawson_rk4(wh, s.rhs, e2, e1, dt)
        if closure is not None:
            tend = closure(torch.fft.irfft2(wh, s=(m, m))[:, None])[:, 0]
            nxt = nxt + dt * torch.fft.rfft2(tend.to(torch.float64)) * closure_mask
        wh = nxt
    if deconvolve:
        wh = wh * box
    return torch.fft.irfft2(wh, s=(m, m))[:, None], steps


def coarse_solvers(task: Any) -> dict[str, CoarseSolver]:
    """The ``"fv"``, ``"spectral"``, ``"dns"`` and ``"floor"`` solvers of ``task`` (a `Turbulence`)."""

    def fv_solve(inputs: np.ndarray, k: int, cfl: float = FV_CFL) -> np.ndarray:
        return fv_advance(restrict(np.asarray(inputs, dtype=np.float64), k), task, cfl)

    def fv_adv(state: np.ndarray, k: int, cfl: float = FV_CFL) -> np.ndarray:
        return fv_advance(state, task, cfl)

    def sp_solve(inputs: np.ndarray, k: int, cs: float = SMAGORINSKY_CS, cfl: float = SPECTRAL_CFL,
                 deconvolve: bool = True) -> np.ndarray:
        return spectral_advance(restrict(np.asarray(inputs, dtype=np.float64), k), task, cs, cfl, deconvolve)

    def sp_adv(state: np.ndarray, k: int, cs: float = SMAGORINSKY_CS, cfl: float = SPECTRAL_CFL,
               deconvolve: bool = True) -> np.ndarray:
        return spectral_advance(state, task, cs, cfl, deconvolve)

    def sp_torch(state: Any, closure: Callable[[Any], Any] | None = None, steps: int | None = None,
                 cs: float = SMAGORINSKY_CS, cfl: float = SPECTRAL_CFL, deconvolve: bool = True) -> tuple[Any, int]:
        return spectral_advance_torch(state, task, closure, steps, cs, cfl, deconvolve)

    def dns_solve(inputs: np.ndarray, k: int, deconvolve: bool = True) -> np.ndarray:
        # at k = 1 the input holds point values, not cell averages: nothing to deconvolve
        return dns_advance(restrict(np.asarray(inputs, dtype=np.float64), k), task, deconvolve and k > 1)

    def dns_adv(state: np.ndarray, k: int, deconvolve: bool = True) -> np.ndarray:
        return dns_advance(state, task, deconvolve and k > 1)

    def floor_adv(state: np.ndarray, k: int) -> np.ndarray:
        fine = unfilter(np.asarray(state, dtype=np.float64)[:, 0], k)[:, None]
        return restrict(task.fine_solve(fine), k)

    def floor_solve(inputs: np.ndarray, k: int) -> np.ndarray:
        return floor_adv(restrict(np.asarray(inputs, dtype=np.float64), k), k)

    return {
        "fv": CoarseSolver(
            solve=fv_solve, advance=fv_adv, params={"cfl": FV_CFL},
            description="Arakawa-Jacobian finite differences (conserve energy and enstrophy), RK4, k-coarse grid",
        ),
        "spectral": CoarseSolver(
            solve=sp_solve, advance=sp_adv, params={"cs": SMAGORINSKY_CS, "cfl": SPECTRAL_CFL, "deconvolve": True},
            choices={"deconvolve": (True, False)}, differentiable=sp_torch,
            description="pseudo-spectral IF-RK4 on the k-coarse grid with Smagorinsky eddy viscosity c_s",
        ),
        "dns": CoarseSolver(
            solve=dns_solve, advance=dns_adv, params={"deconvolve": True}, choices={"deconvolve": (True, False)},
            description="the fine solver (pseudo-spectral IF-RK4, 2/3 de-aliasing, no subgrid model) on the "
                        "k-coarse grid",
        ),
        "floor": CoarseSolver(
            solve=floor_solve, advance=floor_adv, reference=True,
            description="reference: the fine solver on the fine grid from the band-limited inverse of R_k omega "
                        "(the coarse-information floor; a fine solve's cost)",
        ),
    }
