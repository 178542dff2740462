"""Loss terms of NeuroScale: data misfit, Gaussian NLL and the physics regulariser.

Total loss (each term dimensionless):

    L = mean_k ||R_k u - y_k||^2_norm  +  gamma L_phys  +  beta mean_k NLL_k

* data: mean squared error in normalised output units (per-channel target std).
* NLL: ``0.5 (log sigma^2 + (y - mu)^2 / sigma^2)`` per point (the constant
  ``0.5 log 2 pi`` dropped), normalised units.
* physics, with ``rho(r) = mean(r^2)``:

      L_phys = lambda_fine   rho(residual(u, x, 1)) / c_1
             + lambda_coarse mean_k rho(residual(R_k u, x, k)) / c_k
             + lambda_div    mean_k rho(divergence(R_k u, k)) / c_div,k

  ``u`` is the network's fine field (the proposal's "u_pred up"), ``k`` runs over the
  training factors. Each ``c`` is the term's value on the reference field of its level
  (see `PhysicsLoss.from_data`), so 1 means "as unphysical as the data-consistent
  reference". The zero field is NOT a usable reference for the fine residual: it
  amplifies errors by ~1/h^2, and normalised by ``rho(f)`` it outweighed the data term by
  ~1e4 on Darcy (docs/neuroscale.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from nskernel import TaskSpec
from nskernel.grid import prolong, restrict


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).pow(2).mean()


def gaussian_nll(mean: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood per point (without ``0.5 log 2 pi``)."""
    return 0.5 * (logvar + (target - mean).pow(2) * torch.exp(-logvar)).mean()


def _ms(r: torch.Tensor) -> torch.Tensor:
    return r.pow(2).mean()


class PhysicsLoss:
    """The physics regulariser of a `TaskSpec`; hooks that are ``None`` contribute
    nothing. Scales are measured once on training data by `from_data`."""

    def __init__(
        self,
        spec: TaskSpec,
        k_train: tuple[int, ...],
        scales: dict[str, float],
        lambda_fine: float,
        lambda_coarse: float,
        lambda_div: float,
    ) -> None:
        self.spec, self.k_train, self.scales = spec, tuple(k_train), scales
        self.lambdas = {"fine": lambda_fine, "coarse": lambda_coarse, "div": lambda_div}

    @property
    def active(self) -> bool:
        return bool(self.terms_available())

    def terms_available(self) -> list[str]:
        out = []
        if self.spec.residual is not None:
            out += [n for n in ("fine", "coarse") if self.lambdas[n] > 0]
        if self.spec.divergence is not None and self.lambdas["div"] > 0:
            out.append("div")
        return out

    @classmethod
    def from_data(
        cls,
        spec: TaskSpec,
        inputs: torch.Tensor,
        targets: dict[int, torch.Tensor],
        lambda_fine: float,
        lambda_coarse: float,
        lambda_div: float,
    ) -> PhysicsLoss:
        """Measure the normalising scales on (a few) training samples in physical units.

        Each term is divided by its value on the reference field of its level: the target
        ``y_k`` on a coarse level, the finest target prolonged piecewise-constantly to the
        fine grid (and averaged to ``spec.physics_k``, any factor). Where that value is
        negligible (the data satisfy the constraint, e.g. divergence-free targets) the
        scale falls back to the zero field's residual, resp. the per-channel divergence
        energy of the target."""
        k_train = tuple(sorted(targets))
        k0 = k_train[0]
        scales: dict[str, float] = {}
        with torch.no_grad():
            if spec.residual is not None:
                kf = spec.physics_k  # the "fine" physics level (1 unless the task says)
                for k in dict.fromkeys((kf, *k_train)):
                    # the finest target, blocky on the fine grid, averaged to level k
                    ref = targets[k] if k in targets else restrict(prolong(targets[k0], k0), k)
                    r_ref = _ms(spec.residual(ref, inputs, k))
                    r_zero = _ms(spec.residual(torch.zeros_like(ref), inputs, k))
                    scales[f"res{k}"] = _scale(r_ref, r_zero)
            if spec.divergence is not None:
                for k in k_train:
                    y = targets[k]
                    energy = sum(
                        _ms(spec.divergence(y * _unit(spec.out_channels, c, y), k)) for c in range(spec.out_channels)
                    )
                    scales[f"div{k}"] = _scale(_ms(spec.divergence(y, k)), energy)
        return cls(spec, k_train, scales, lambda_fine, lambda_coarse, lambda_div)

    def __call__(self, u_fine: torch.Tensor, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted physics terms for the fine field ``u_fine`` (physical units) and the
        fine ``inputs`` (physical units); keys ``phys_fine``, ``phys_coarse``, ``phys_div``."""
        out: dict[str, torch.Tensor] = {}
        residual: Callable[..., torch.Tensor] | None = self.spec.residual
        coarse = {k: restrict(u_fine, k) for k in self.k_train}
        if residual is not None and self.lambdas["fine"] > 0:
            kf = self.spec.physics_k
            u = u_fine if kf == 1 else restrict(u_fine, kf)
            out["phys_fine"] = self.lambdas["fine"] * _ms(residual(u, inputs, kf)) / self.scales[f"res{kf}"]
        if residual is not None and self.lambdas["coarse"] > 0:
            terms = [_ms(residual(coarse[k], inputs, k)) / self.scales[f"res{k}"] for k in self.k_train]
            out["phys_coarse"] = self.lambdas["coarse"] * torch.stack(terms).mean()
        if self.spec.divergence is not None and self.lambdas["div"] > 0:
            terms = [_ms(self.spec.divergence(coarse[k], k)) / self.scales[f"div{k}"] for k in self.k_train]
            out["phys_div"] = self.lambdas["div"] * torch.stack(terms).mean()
        return out


def _unit(channels: int, c: int, like: torch.Tensor) -> torch.Tensor:
    """``(1, C, 1, 1)`` selector of channel ``c``."""
    e = like.new_zeros(1, channels, 1, 1)
    e[0, c] = 1.0
    return e


def _scale(reference: torch.Tensor | float, fallback: torch.Tensor | float) -> float:
    """``reference`` unless it is negligible next to ``fallback`` (or not finite); 1 if
    both vanish."""
    ref, fb = float(reference), float(fallback)
    if np.isfinite(ref) and ref > 1e-12 * max(fb, 0.0) and ref > 1e-30:
        return ref
    return fb if np.isfinite(fb) and fb > 1e-30 else 1.0
