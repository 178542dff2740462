"""Rayleigh-Benard convection as a continuous PDE for pointwise solvers.

Space-time box ``(x, z, t) in [0, aspect) x [0, 1] x [0, horizon]``, periodic in x, in
the task's free-fall units (``nu = sqrt(Pr/Ra)``, ``kappa = 1/sqrt(Ra Pr)``)::

    T_t + u T_x + w T_z = kappa Lap T
    u_t + u u_x + w u_z + p_x = nu Lap u
    w_t + u w_x + w w_z + p_z = nu Lap w + (T - (1 - z))
    u_x + w_z = 0

(``p`` is the pressure minus the hydrostatic part of the conduction profile).

The initial state is *anchored*, not fitted: with ``q = (T, u, w)`` and ``s = t/horizon``
the solution is ``q = q0(x, z) + s 4 z (1 - z) c N_q(x, z, t)``, where ``q0`` is the
fine input state (bilinear between cell centres; its first derivatives and Laplacian
from central differences on the fine grid with the solver's wall ghosts, supplied as
coefficients) and ``N`` the network (``c = (0.5, 0.3, 0.3)``, the scales of the
changes). So ``q = q0`` at t = 0 exactly, the plates stay at their values, a network
that learns nothing predicts persistence, and the network only represents the change
over one horizon. The pressure ``p = 0.1 N_p`` is free. Periodicity in x comes from the
method's periodic embedding. The prediction is ``q`` at the cell centres at t = horizon
(point values standing in for the cell averages of the data: a second-order difference).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nskernel import PointwisePDE
from tasks.numerics.pointwise import bilinear, cell_centre_points, grad

CHANGE_SCALES = (0.5, 0.3, 0.3)  # T, u, w: velocities are ~0.2 in free-fall units (docs/convection.md)
PRESSURE_SCALE = 0.1


def state_derivatives(state: np.ndarray, aspect: float) -> np.ndarray:
    """``(12, H, W)``: for T, u, w the field, d/dx, d/dz and the Laplacian at the cell
    centres; periodic in x, wall ghosts ``2 T_plate - T`` (T = 1 below, 0 above) and
    ``-u``, ``-w`` (no-slip) in z."""
    _, h, w = state.shape
    dx, dz = aspect / w, 1.0 / h
    out = []
    for c, (lo, hi) in enumerate(((1.0, 0.0), (0.0, 0.0), (0.0, 0.0))):
        f = state[c]
        fp = np.concatenate([2 * lo - f[:1], f, 2 * hi - f[-1:]], axis=0)
        fx = (np.roll(f, -1, 1) - np.roll(f, 1, 1)) / (2 * dx)
        fz = (fp[2:] - fp[:-2]) / (2 * dz)
        lap = (np.roll(f, -1, 1) - 2 * f + np.roll(f, 1, 1)) / dx**2 + (fp[2:] - 2 * f + fp[:-2]) / dz**2
        out += [f, fx, fz, lap]
    return np.stack(out)


def convection_pointwise(task: Any) -> PointwisePDE:
    """The `PointwisePDE` of a `tasks.convection.Convection` configuration."""
    h, w = task.shape
    aspect, horizon = float(task.aspect), float(task.horizon)
    kappa, nu = 1.0 / float(np.sqrt(task.ra * task.pr)), float(np.sqrt(task.pr / task.ra))
    lower, upper = (0.0, 0.0), (aspect, 1.0)
    centres = cell_centre_points(h, w, lower, upper)  # (x, z), row-major over (z, x)

    def constrain(x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        z = x[:, 1:2]
        ramp = (x[:, 2:3] / horizon) * 4.0 * z * (1.0 - z)  # 0 at t = 0 and on the plates
        scale = torch.tensor(CHANGE_SCALES, dtype=raw.dtype, device=raw.device)
        return torch.cat([ramp * scale * raw[:, 0:3], PRESSURE_SCALE * raw[:, 3:4]], dim=1)

    def residual(x: torch.Tensor, out: torch.Tensor, coeff: torch.Tensor) -> list[torch.Tensor]:
        # q_c = q0_c + out_c; q0 is constant in t, its space derivatives are coefficients.
        q = [coeff[:, 4 * c : 4 * c + 1] + out[:, c : c + 1] for c in range(3)]
        d_net = [grad(out[:, c : c + 1], x) for c in range(3)]  # (n, 3): d/dx, d/dz, d/dt
        d = [torch.cat([d_net[c][:, 0:2] + coeff[:, 4 * c + 1 : 4 * c + 3], d_net[c][:, 2:3]], dim=1)
             for c in range(3)]
        lap = [grad(d_net[c][:, 0:1], x)[:, 0:1] + grad(d_net[c][:, 1:2], x)[:, 1:2] + coeff[:, 4 * c + 3 : 4 * c + 4]
               for c in range(3)]
        dp = grad(out[:, 3:4], x)
        u, w_ = q[1], q[2]

        def transport(c: int) -> torch.Tensor:
            return d[c][:, 2:3] + u * d[c][:, 0:1] + w_ * d[c][:, 1:2]

        heat = transport(0) - kappa * lap[0]
        mom_u = transport(1) + dp[:, 0:1] - nu * lap[1]
        mom_w = transport(2) + dp[:, 1:2] - nu * lap[2] - (q[0] - (1.0 - x[:, 1:2]))
        return [heat, torch.cat([mom_u, mom_w], dim=1), d[1][:, 0:1] + d[2][:, 1:2]]

    def coefficients(sample: np.ndarray, x: np.ndarray) -> np.ndarray:
        fields = state_derivatives(np.asarray(sample, dtype=np.float64), aspect)
        return bilinear(fields, x, lower, upper, periodic_first=True)

    def to_field(values: np.ndarray, sample: np.ndarray) -> np.ndarray:
        change = values[:, :3].T.reshape(3, h, w)
        return np.asarray(sample, dtype=np.float64) + change

    infeasible = "" if task.plates == "no-slip" else f"pointwise form has no-slip plates only, task has {task.plates}"
    return PointwisePDE(
        coords=("x", "z", "t"),
        bounds=((0.0, aspect), (0.0, 1.0), (0.0, horizon)),
        cells=(w, h),
        outputs=("dT", "du", "dw", "p"),
        residual_names=("heat", "momentum", "continuity"),
        residual=residual,
        coefficients=coefficients,
        n_coefficients=12,
        eval_points=np.concatenate([centres, np.full((len(centres), 1), horizon)], axis=1),
        to_field=to_field,
        constrain=constrain,
        periodic=(True, False, False),
        infeasible=infeasible,
        description="Boussinesq in (x, z, t); initial state anchored, plates hard; the network is the change",
        notes={"kappa": kappa, "nu": nu},
    )


__all__ = ["convection_pointwise", "state_derivatives"]
