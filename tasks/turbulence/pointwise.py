"""Forced 2D turbulence as a continuous PDE for pointwise solvers (vorticity form).

Space-time box ``(x, y, t) in [0, 2 pi)^2 x [0, horizon]``, periodic in x and y::

    omega_t + u omega_x + v omega_y = nu Lap omega - alpha omega + f(y),
    -Lap psi = omega,   (u, v) = (psi_y, -psi_x),   f = -F k_f cos(k_f y).

As for convection (`tasks.convection_pointwise`) the initial state is anchored:
``omega = omega0 + s c_w N_w``, ``psi = psi0 + s c_p N_p`` with ``s = t / horizon``;
``omega0`` (the fine input), its gradient and Laplacian, and the velocity of ``psi0 =
(-Lap)^-1 omega0`` are computed spectrally on the fine grid and interpolated bilinearly
as coefficients. The network is the change over one horizon; a network that learns
nothing predicts persistence.

Feasibility: the vorticity of these flows has structure down to the dissipation scale
(``k_max eta ~ 1`` on the fine grid), and over one horizon the filaments move by about
a forcing length. A PINN in space-time must represent that motion point by point; with
the suite's per-instance budgets it does not get below the error of persistence
(docs/pinn.md, "Turbulence"), so the definition is marked `infeasible` and pointwise
methods record ``n/a`` with this reason unless forced (``pinn:force=true``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nskernel import PointwisePDE
from tasks.numerics.pointwise import bilinear, cell_centre_points, grad

TWO_PI = 2.0 * np.pi
OMEGA_SCALE, PSI_SCALE = 4.0, 0.5  # rms vorticity ~4 (stationary), psi ~ omega / k_f^2


def vorticity_fields(omega: np.ndarray) -> np.ndarray:
    """``(6, n, n)``: omega, omega_x, omega_y, Lap omega, u = psi_y, v = -psi_x of a
    periodic ``omega (n, n)`` on ``[0, 2 pi)^2`` (axis 0 = y), spectrally."""
    n = omega.shape[-1]
    k = np.fft.fftfreq(n, d=1.0 / n)
    ky, kx = k[:, None], np.fft.rfftfreq(n, d=1.0 / n)[None, :]
    wh = np.fft.rfft2(omega)
    k2 = ky**2 + kx**2
    inv = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
    psi_h = wh * inv
    back = lambda f: np.fft.irfft2(f, s=(n, n))  # noqa: E731
    return np.stack([omega, back(1j * kx * wh), back(1j * ky * wh), back(-k2 * wh),
                     back(1j * ky * psi_h), back(-1j * kx * psi_h)])


def turbulence_pointwise(task: Any) -> PointwisePDE:
    """The `PointwisePDE` of a `tasks.turbulence.Turbulence` configuration."""
    n, horizon = int(task.n), float(task.horizon)
    nu, drag, force, kf = float(task.viscosity), float(task.drag), float(task.force), int(task.kf)
    lower, upper = (0.0, 0.0), (TWO_PI, TWO_PI)
    centres = cell_centre_points(n, n, lower, upper)  # (x, y), row-major over (y, x)

    def constrain(x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        s = x[:, 2:3] / horizon
        return torch.cat([s * OMEGA_SCALE * raw[:, 0:1], s * PSI_SCALE * raw[:, 1:2]], dim=1)

    def residual(x: torch.Tensor, out: torch.Tensor, coeff: torch.Tensor) -> list[torch.Tensor]:
        dw, dp = grad(out[:, 0:1], x), grad(out[:, 1:2], x)  # (n, 3): d/dx, d/dy, d/dt
        lap_w = grad(dw[:, 0:1], x)[:, 0:1] + grad(dw[:, 1:2], x)[:, 1:2]
        lap_p = grad(dp[:, 0:1], x)[:, 0:1] + grad(dp[:, 1:2], x)[:, 1:2]
        omega = coeff[:, 0:1] + out[:, 0:1]
        u = coeff[:, 4:5] + dp[:, 1:2]
        v = coeff[:, 5:6] - dp[:, 0:1]
        f = -force * kf * torch.cos(kf * x[:, 1:2])
        vort = (dw[:, 2:3] + u * (coeff[:, 1:2] + dw[:, 0:1]) + v * (coeff[:, 2:3] + dw[:, 1:2])
                - nu * (coeff[:, 3:4] + lap_w) + drag * omega - f)
        # -Lap psi0 = omega0 exactly, so only the network parts enter the Poisson equation
        return [vort / OMEGA_SCALE, -lap_p - out[:, 0:1]]

    def coefficients(sample: np.ndarray, x: np.ndarray) -> np.ndarray:
        fields = vorticity_fields(np.asarray(sample, dtype=np.float64)[0])
        return bilinear(fields, x, lower, upper, periodic_first=True, periodic_second=True)

    def to_field(values: np.ndarray, sample: np.ndarray) -> np.ndarray:
        return np.asarray(sample, dtype=np.float64) + values[:, 0].reshape(1, n, n)

    infeasible = (
        f"2D turbulence at Re={task.re:g} on {n}x{n}: vorticity filaments down to the dissipation scale move "
        "about a forcing length per horizon; a space-time PINN does not beat persistence within the per-instance "
        "budget (docs/pinn.md)"
    )
    return PointwisePDE(
        coords=("x", "y", "t"),
        bounds=((0.0, TWO_PI), (0.0, TWO_PI), (0.0, horizon)),
        cells=(n, n),
        outputs=("domega", "dpsi"),
        residual_names=("vorticity", "poisson"),
        residual=residual,
        coefficients=coefficients,
        n_coefficients=6,
        eval_points=np.concatenate([centres, np.full((len(centres), 1), horizon)], axis=1),
        to_field=to_field,
        constrain=constrain,
        periodic=(True, True, False),
        infeasible=infeasible,
        description="vorticity-streamfunction in (x, y, t); initial state anchored; the network is the change",
        notes={"nu": nu, "drag": drag},
    )


__all__ = ["turbulence_pointwise", "vorticity_fields"]
