"""Darcy flow as a continuous PDE for pointwise solvers: the first-order (mixed) system.

``-div(a grad u) = f`` with a *piecewise constant* ``a`` cannot be written in the strong
form ``-a Lap u - grad a . grad u = f`` at points: ``grad a`` is a sum of deltas on the
phase interfaces, and a PINN on ``-a Lap u = f`` loses the flux continuity across them.
We therefore use the first-order system with the flux ``sigma = -a grad u``::

    sigma + a grad u = 0,        div sigma = f,

and minimise the weighted least-squares (FOSLS) functional
``||a^(-1/2) (sigma + a grad u)||^2 + ||div sigma - f||^2``. It needs only first
derivatives and no derivative of ``a``; the normal flux continuity is carried by the
smooth network ``sigma``; and the ``a^(-1/2)`` weight makes the first term the energy
norm of the flux mismatch, the standard choice for discontinuous coefficients (Cai,
Lazarov, Manteuffel & McCormick 1994). ``u = 0`` on the walls is a hard constraint:
``u = s_u 16 x(1-x) y(1-y) N_u(x, y)``; the flux is free.

Non-dimensionalisation: ``s_u = 0.07 f / a_ref`` (the centre value of the constant-
coefficient solution is ``0.0737 f / a``) and ``s_sigma = f / 2`` (the wall flux scale),
``a_ref`` the geometric mean of the two phases; residuals are divided by ``s_sigma`` and
``f`` so an O(1) error in the network gives O(1) residuals.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from nskernel import PointwisePDE
from tasks.numerics.pointwise import cell_centre_points, cell_lookup, grad

LOWER, UPPER = (0.0, 0.0), (1.0, 1.0)


def darcy_pointwise(task: Any) -> PointwisePDE:
    """The mixed-form `PointwisePDE` of a `tasks.darcy.Darcy` configuration (unit square,
    ``u = 0`` on the walls, constant forcing ``task.forcing``)."""
    n, f = int(task.resolution), float(task.forcing)
    a_ref = math.sqrt(float(task.contrast[0]) * float(task.contrast[1]))
    s_u, s_sigma = 0.07 * f / a_ref, 0.5 * abs(f)

    def constrain(x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        bubble = 16.0 * x[:, 0:1] * (1.0 - x[:, 0:1]) * x[:, 1:2] * (1.0 - x[:, 1:2])
        return torch.cat([s_u * bubble * raw[:, 0:1], s_sigma * raw[:, 1:3]], dim=1)

    def residual(x: torch.Tensor, out: torch.Tensor, coeff: torch.Tensor) -> list[torch.Tensor]:
        a = coeff[:, 0:1]
        du = grad(out[:, 0:1], x)
        div = grad(out[:, 1:2], x)[:, 0:1] + grad(out[:, 2:3], x)[:, 1:2]
        flux = (out[:, 1:3] + a * du) * torch.sqrt(a_ref / a) / s_sigma  # (n, 2)
        # Term 0 (the reference of adaptive weighting) is the balance law; the Darcy law
        # is one vector term, so adaptive weighting balances the two equations, not
        # the two flux components.
        return [(div - f) / abs(f), flux]

    def coefficients(sample: np.ndarray, x: np.ndarray) -> np.ndarray:
        return cell_lookup(np.asarray(sample, dtype=np.float64)[0], x, LOWER, UPPER)[:, None]

    def to_field(values: np.ndarray, sample: np.ndarray) -> np.ndarray:
        return values[:, 0].reshape(1, n, n)

    return PointwisePDE(
        coords=("x", "y"),
        bounds=((LOWER[0], UPPER[0]), (LOWER[1], UPPER[1])),
        cells=(n, n),
        outputs=("u", "sigma_x", "sigma_y"),
        residual_names=("balance", "darcy"),
        residual=residual,
        coefficients=coefficients,
        n_coefficients=1,
        eval_points=cell_centre_points(n, n, LOWER, UPPER),
        to_field=to_field,
        constrain=constrain,
        periodic=(False, False),
        description="mixed (FOSLS) form: sigma + a grad u = 0, div sigma = f; u = 0 hard-constrained",
        notes={"s_u": s_u, "s_sigma": s_sigma, "a_ref": a_ref},
    )


__all__ = ["darcy_pointwise"]
