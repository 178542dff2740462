"""Physics operators of the convection task on the k-coarse grid (cell averages).

Fields are channel-first ``(N, 3, h, w)`` = (T, u, w), row 0 at the bottom plate, cell
centres ``z_j = (j + 1/2)/h``, ``x`` periodic with spacing ``aspect / w``. Wall ghosts
(second order, values mirrored about the plate): ``T_ghost = 2 T_plate - T`` (T = 1 at
z = 0 and 0 at z = 1), ``w_ghost = -w``, ``u_ghost = -u`` (no-slip) or ``+u``
(stress-free). Everything in torch is differentiable; the metrics take NumPy arrays.

* `divergence`: central-difference ``du/dx + dw/dz`` at the cell centres.
* `temperature_residual`: trapezoidal-in-time residual of the temperature equation for
  the one-horizon map ``state(t) -> state(t + horizon)``.
* `mass_flux`: the net volume fluxes through horizontal and vertical lines that
  continuity and impermeable plates make zero (a law of the truth, docs/convection.md);
  `mass_flux_law` is the same law as a differentiable vector (``TaskSpec.laws``).
* `nusselt_err`, `profile_err`: statistics of the prediction vs the filtered truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nskernel import Metric, Tolerance
from nskernel.grid import restrict


@dataclass(frozen=True)
class Physics:
    """Physical parameters the operators need (free-fall units)."""

    ra: float
    pr: float
    aspect: float
    horizon: float
    plates: str = "no-slip"

    @property
    def kappa(self) -> float:
        return 1.0 / math.sqrt(self.ra * self.pr)

    @property
    def nu(self) -> float:
        return math.sqrt(self.pr / self.ra)


def _tensor(a: np.ndarray | torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a if like is None else a.to(device=like.device, dtype=like.dtype)
    t = torch.as_tensor(np.asarray(a, dtype=np.float64))
    return t if like is None else t.to(device=like.device, dtype=like.dtype)


def _spacing(y: torch.Tensor, aspect: float) -> tuple[float, float]:
    h, w = y.shape[-2:]
    return aspect / w, 1.0 / h


def _pad_z(f: torch.Tensor, sign: float = 1.0, plates: tuple[float, float] | None = None) -> torch.Tensor:
    """Append wall ghost rows: ``2 plate - f`` for fixed plate values, else ``sign * f``."""
    if plates is not None:
        lo, hi = 2.0 * plates[0] - f[..., :1, :], 2.0 * plates[1] - f[..., -1:, :]
    else:
        lo, hi = sign * f[..., :1, :], sign * f[..., -1:, :]
    return torch.cat([lo, f, hi], dim=-2)


def _ddx(f: torch.Tensor, dx: float) -> torch.Tensor:
    return (torch.roll(f, -1, dims=-1) - torch.roll(f, 1, dims=-1)) / (2.0 * dx)


def _ddz(fp: torch.Tensor, dz: float) -> torch.Tensor:
    """Central z-derivative of a ghost-padded field (h + 2 rows) at the h centres."""
    return (fp[..., 2:, :] - fp[..., :-2, :]) / (2.0 * dz)


def divergence(y: torch.Tensor, aspect: float) -> torch.Tensor:
    """``du/dx + dw/dz`` ``(N, h, w)`` of ``y (N, 3, h, w)`` by central differences
    (``w`` odd about the plates)."""
    dx, dz = _spacing(y, aspect)
    w_p = _pad_z(y[:, 2], -1.0)
    return _ddx(y[:, 1], dx) + _ddz(w_p, dz)


def _tendency(y: torch.Tensor, ph: Physics) -> torch.Tensor:
    """``-div(u T) + kappa lap T`` at the centres (conservative central differences)."""
    dx, dz = _spacing(y, ph.aspect)
    t, u, w = y[:, 0], y[:, 1], y[:, 2]
    t_p = _pad_z(t, plates=(1.0, 0.0))
    flux_z = _pad_z(w * t, -1.0)  # no flux through the plates: odd ghosts
    adv = _ddx(u * t, dx) + _ddz(flux_z, dz)
    lap = (torch.roll(t, -1, -1) - 2.0 * t + torch.roll(t, 1, -1)) / dx**2 + (
        t_p[..., 2:, :] - 2.0 * t + t_p[..., :-2, :]) / dz**2
    return -adv + ph.kappa * lap


def temperature_residual(y: torch.Tensor, inputs: np.ndarray | torch.Tensor, k: int, ph: Physics) -> torch.Tensor:
    """Trapezoidal residual ``(T1 - T0) - horizon/2 (F(y1) + F(y0))`` ``(N, h, w)`` of the
    temperature equation ``dT/dt = F = -div(u T) + kappa lap T``, where ``y1 = y`` is the
    predicted state at t + horizon on grid k and ``y0 = R_k(inputs)`` the state at t.
    In temperature units (change over one horizon); differentiable in ``y``."""
    y0 = restrict(_tensor(inputs, y), k)
    if y0.shape[-2:] != y.shape[-2:]:
        raise ValueError(f"prediction grid {tuple(y.shape[-2:])} does not match k={k} ({tuple(y0.shape[-2:])})")
    return (y[:, 0] - y0[:, 0]) - 0.5 * ph.horizon * (_tendency(y, ph) + _tendency(y0, ph))


def plate_nusselt(fine: np.ndarray) -> np.ndarray:
    """Mean of the bottom and top plate Nusselt numbers ``(N,)`` of fine states
    (the solver's wall flux: ``-dT/dz ~ 2 (T_plate - T_wall cell) / dz``)."""
    t = np.asarray(fine, dtype=np.float64)[:, 0]
    dz = 1.0 / t.shape[-2]
    bottom = 2.0 * (1.0 - t[:, 0].mean(-1)) / dz
    top = 2.0 * t[:, -1].mean(-1) / dz
    return 0.5 * (bottom + top)


def mass_flux(pred: np.ndarray, inputs: np.ndarray, k: int) -> np.ndarray:
    """Net volume fluxes that incompressibility and impermeable plates forbid, per sample:
    ``sqrt(mean_rows <w>_x^2 + mean_cols (<u>_z - <u>)^2) / U``.

    With ``div u = 0``, ``w = 0`` on both plates and x periodic, the net vertical flux
    ``int w dx`` through every horizontal line is zero, and the net horizontal flux
    ``int_0^1 u dz`` through a vertical line is the same for every x. Cell averages
    inherit both exactly: every row of ``R_k w`` has zero mean, and every column of
    ``R_k u`` has the same mean. The fine and coarse solvers satisfy both to round-off
    (their discrete continuity equation at ``kx = 0`` and summed over a column). ``U`` is
    the rms of ``R_k`` of the input's velocity ``(u, w)``: a uniform ``w`` of ``c U``
    scores ``c``. ``target`` is not needed: a law, not an error.
    """
    p = np.asarray(pred, dtype=np.float64)
    vel = restrict(np.asarray(inputs, dtype=np.float64)[:, 1:], k)
    scale = np.sqrt((vel**2).mean(axis=(1, 2, 3)))
    rows = p[:, 2].mean(axis=-1)  # (N, h): net vertical flux through each row, per unit length
    cols = p[:, 1].mean(axis=-2)  # (N, w): net horizontal flux through each column
    cols = cols - cols.mean(axis=-1, keepdims=True)
    return np.sqrt((rows**2).mean(axis=-1) + (cols**2).mean(axis=-1)) / np.maximum(scale, 1e-300)


def mass_flux_law(y: torch.Tensor, inputs: np.ndarray | torch.Tensor, k: int) -> torch.Tensor:
    """`mass_flux` as a differentiable law vector ``(N, h + w)`` of ``y (N, 3, h, w)``:
    the row means of ``w`` over ``sqrt(h) U`` and the column means of ``u`` about their
    mean over ``sqrt(w) U``, so its squared norm per sample is ``mass_flux^2``. Zero for
    every ``R_k`` of the truth; ``U`` comes from the inputs (no gradient)."""
    vel = restrict(_tensor(inputs, y)[:, 1:], k)
    scale = vel.pow(2).mean((1, 2, 3)).sqrt().clamp_min(torch.finfo(y.dtype).tiny)[:, None]
    rows = y[:, 2].mean(-1) / math.sqrt(y.shape[-2])
    cols = y[:, 1].mean(-2)
    cols = (cols - cols.mean(-1, keepdim=True)) / math.sqrt(y.shape[-1])
    return torch.cat([rows, cols], dim=1) / scale


def nusselt(y: np.ndarray, ra: float, pr: float) -> np.ndarray:
    """Volume Nusselt number ``1 + sqrt(Ra Pr) <w (T - (1 - z))>`` ``(N,)`` of cell averages."""
    y = np.asarray(y, dtype=np.float64)
    h = y.shape[-2]
    z = (np.arange(h) + 0.5) / h
    theta = y[:, 0] - (1.0 - z)[:, None]
    return 1.0 + math.sqrt(ra * pr) * (y[:, 2] * theta).mean((-2, -1))


def nusselt_err(pred: np.ndarray, target: np.ndarray, ph: Physics) -> np.ndarray:
    """``|Nu(pred) - Nu(target)| / Nu(target)`` with `nusselt` on the coarse grid."""
    nt = nusselt(target, ph.ra, ph.pr)
    return np.abs(nusselt(pred, ph.ra, ph.pr) - nt) / np.abs(nt)


def profile_err(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``||<T>_x(pred) - <T>_x(target)|| / ||<T>_x(target) - (1 - z)||``: error of the mean
    temperature profile relative to its departure from conduction."""
    p, t = np.asarray(pred, dtype=np.float64)[:, 0].mean(-1), np.asarray(target, dtype=np.float64)[:, 0].mean(-1)
    h = t.shape[-1]
    cond = 1.0 - (np.arange(h) + 0.5) / h
    return np.linalg.norm(p - t, axis=-1) / np.linalg.norm(t - cond, axis=-1)


MASS_FLUX = Metric(
    "mass_flux", "net volume flux through horizontal lines (row means of w) and its variation across vertical "
    "lines (column means of u), zero by continuity and impermeable plates; rms over rows and columns / rms velocity",
    fn=lambda p, y, x, k, spec: mass_flux(p.mean, x, k), group="physics", headline=True)
NUSSELT_ERR = Metric(
    "nusselt_err", "relative error of the Nusselt number (heat transport) on the coarse grid",
    fn=lambda p, y, x, k, spec: nusselt_err(p.mean, y, spec.physics), tolerance=Tolerance(0.05, 1e-3), group="task")
PROFILE_ERR = Metric(
    "profile_err", "error of the horizontally averaged temperature profile, relative to its departure from conduction",
    fn=lambda p, y, x, k, spec: profile_err(p.mean, y), group="task")

__all__ = [
    "Physics", "divergence", "temperature_residual", "mass_flux", "plate_nusselt",
    "nusselt", "nusselt_err", "profile_err", "MASS_FLUX", "NUSSELT_ERR", "PROFILE_ERR",
]
