"""The convection task's coarse solvers in torch, differentiable (``CoarseSolver.differentiable``).

`coarse_advance_torch` is `Convection.coarse_advance` on the torch backend of `SpectralFD`
(the same float64 numbers to round-off), differentiable in the coarse state and in a
learned correction ``closure`` applied after every RK4 step (the `closure` method). The
``"spectral"`` and ``"fv"`` families share it: they differ only in ``x_scheme``
(``"spectral"`` / ``"fd2"``), i.e. in the operators `SpectralFD` builds, not in the steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch

from tasks.convection.boussinesq import SpectralFD
from tasks.convection.ops import TorchOps
from tasks.numerics.autograd import safe_sqrt

Closure = Callable[[torch.Tensor], torch.Tensor]


class _AutogradOps(TorchOps):
    @staticmethod
    def sqrt(a: torch.Tensor) -> torch.Tensor:
        return safe_sqrt(a)


class TorchSpectralFD(SpectralFD):
    """`SpectralFD` on the torch backend, safe for autograd: every work array is fresh
    (the base class reuses them across calls, which would chain the autograd graphs of
    independent calls and let a backward pass see later in-place writes), and the eddy
    viscosity's ``sqrt`` has a finite gradient at rest (same forward numbers)."""

    def __init__(self, h: int, w: int, ra: float, pr: float, aspect: float, *, plates: str, x_scheme: str,
                 cs: float, device: str = "cpu") -> None:
        super().__init__(h, w, ra, pr, aspect, plates=plates, x_scheme=x_scheme, cs=cs, backend="torch",
                         device=device)
        self.ops = _AutogradOps(device)

    def _buffer(self, shape: tuple[int, ...], complex_: bool = False) -> torch.Tensor:
        dtype = torch.complex128 if complex_ else torch.float64
        return torch.zeros(shape, dtype=dtype, device=self.ops.device)

    def tendency_state(self, rate: torch.Tensor) -> torch.Tensor:
        """Solver-state rate of change from a cell-centred rate ``(B, 3, h, w)`` of (T, u, w):
        `from_fields` made linear. Velocity: face ``w`` = mean of its cells, then the
        projection, so the corrected velocity stays discretely divergence-free. Temperature:
        ``theta = T - (1 - z)`` differs from T by a steady profile, so its rate is T's, and it
        needs no constraint (the plate values live in the ghost rule); only the Fourier modes
        the state keeps (``nk``) survive, as for the state itself."""
        ops = self.ops
        theta = ops.rfft(rate[:, 0], self.nk)
        u, w = self.project(ops.rfft(rate[:, 1], self.nk), self._faces_avg(ops.rfft(rate[:, 2], self.nk)))
        z = ops.zero_rows(u)
        return ops.stack([self._cat([u, z]), self._cat([theta, z]), w])


@lru_cache(maxsize=32)
def _solver(h: int, w: int, ra: float, pr: float, aspect: float, plates: str, x_scheme: str, cs: float,
            device: str) -> TorchSpectralFD:
    return TorchSpectralFD(h, w, ra, pr, aspect, plates=plates, x_scheme=x_scheme, cs=cs, device=device)


def _integrate(s: TorchSpectralFD, state: torch.Tensor, horizon: float, n: int,
               closure: Closure | None) -> torch.Tensor:
    """``n`` equal RK4 steps over ``horizon``; after each, ``dt * closure(fields at its start)``."""
    dt = horizon / n
    for _ in range(n):
        nxt = s.step(state, dt)
        if closure is not None:
            rate = closure(s.fields(state)).to(torch.float64)
            nxt = nxt + dt * s.tendency_state(rate)
        state = nxt
    return state


def coarse_advance_torch(task: Any, state: torch.Tensor, x_scheme: str, cs: float, cfl: float,
                         closure: Closure | None = None, steps: int | None = None) -> tuple[torch.Tensor, int]:
    """Advance coarse cell-centred ``state (B, 3, h, w)`` (T, u, w) by one horizon of
    ``task`` (a `Convection`) with RK4 on the ``h x w`` grid; float64 out.

    ``steps=None``: every sample on its own, with the step of ``cfl`` times the stability
    estimate of its initial state, exactly as `Convection.coarse_advance` (equal to it to
    round-off); returns the largest per-sample step count. ``steps=n``: the whole batch
    in ``n`` equal steps. ``closure`` maps fields ``(B, 3, h, w)`` to a rate of the same
    shape, added as ``dt * closure(fields at the step's start)`` after every step
    (projected: see `TorchSpectralFD.tendency_state`)."""
    x = state.to(torch.float64)
    h, w = x.shape[-2:]
    s = _solver(h, w, float(task.ra), float(task.pr), float(task.aspect), task.plates, x_scheme, float(cs),
                str(x.device))
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        return s.fields(_integrate(s, s.from_fields(x), task.horizon, steps, closure)).contiguous(), steps
    outs, most = [x[:0]], 1
    for i in range(x.shape[0]):  # per sample: its own step, independent of the batch
        st = s.from_fields(x[i : i + 1])
        with torch.no_grad():
            dt = s.stable_dt(st, cfl)
        n = max(1, math.ceil(task.horizon / dt - 1e-9))  # as `SpectralFD.advance`
        outs.append(s.fields(_integrate(s, st, task.horizon, n, closure)))
        most = max(most, n)
    return torch.cat(outs).contiguous(), most


__all__ = ["TorchSpectralFD", "coarse_advance_torch"]
