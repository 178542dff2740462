"""`equino`: the Equilibrium Neural Operator idea (Eivazi, Wessels, Wessels & Wiesner,
"EquiNO: A Physics-Informed Neural Operator for Multiscale Simulations", 2025), adapted.

EquiNO expands the output in a POD basis of training fields that all satisfy a linear
constraint (stress equilibrium), so every prediction satisfies it by construction. Here:

* The POD basis (mean + ``n_pod`` modes, channels scaled by their std) is built from the
  targets at the finest training factor ``k0``; at a factor ``K`` (a multiple of ``k0``,
  so unseen K = 16 works) the basis is ``R_{K/k0}`` of it.
* **Flows** (the spec has ``divergence``): mean and modes are projected onto the kernel of
  the task's discrete divergence on grid K, so every prediction is divergence-free to
  round-off ("divergence-free modes").
* **Otherwise** (Darcy, vorticity turbulence) the constraint is the global balance of the
  task's residual, ``g_K(u) = mean over cells of spec.residual(u, a, K)``; for Darcy it
  is the coarse FV net outflow through the boundary minus the source (interior fluxes
  cancel): "flux balance". It is imposed exactly, ``g_K(pred) = c K`` (``balance="data"``:
  ``c`` fitted by least squares to the training targets' own ``g``, because block
  averages are *not* balanced by the coarse operator: the measured closure is about
  -0.014 K for Darcy, i.e. -5.6%/-11%/-21% of the source at K = 4/8/16, see
  docs/baselines.md) or ``g_K(pred) = 0`` (``balance="exact"``), or not at all
  (``"off"``). It is imposed by one correction along ``psi`` (the balance gradient
  projected onto the POD span, or the gradient itself when the span cannot move the
  balance, e.g. zero-mean vorticity modes). Requires ``g`` affine in ``u`` (checked in
  ``fit``; else the balance is switched off and the reason is kept in ``diagnostics``).
* The coefficients come from the `fno` backbone: the prediction is the orthogonal
  projection of the backbone's output onto the constrained affine POD space (a Galerkin
  projection), trained end to end through the projection. EquiNO uses an MLP on material
  parameters; a field input needs an operator, and reusing `fno` isolates the effect of
  the constraint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from methods.ensemble import Moments
from methods.fno_family.base import FourierOperator
from methods.neural import NeuralMethod, rel_l2_loss
from nskernel import Budget, Context, Dataset, TaskSpec
from nskernel.errors import NotApplicable
from nskernel.grid import prolong, restrict

BALANCES: tuple[str, ...] = ("data", "exact", "off")


def _null_projector_rows(m: torch.Tensor, rtol: float = 1e-10) -> torch.Tensor:
    """Orthonormal rows ``V`` spanning the row space of ``m``: ``x - V^T V x`` projects
    onto ``ker m``."""
    _, s, vt = torch.linalg.svd(m, full_matrices=False)
    return vt[s > rtol * s.max()]


def _orthonormal(cols: torch.Tensor, rtol: float = 1e-8) -> torch.Tensor:
    """Orthonormal basis ``(n, r)`` of the span of the columns of ``cols``."""
    u, s, _ = torch.linalg.svd(cols, full_matrices=False)
    return u[:, s > rtol * s.max()] if s.numel() and s.max() > 0 else cols[:, :0]


class EquiNO(FourierOperator):
    name = "equino"
    summary = "FNO projected on a constrained POD basis: conservation by construction"

    n_pod: int = 128
    balance: str = "data"

    def check_params(self) -> None:
        super().check_params()
        if self.balance not in BALANCES:
            raise ValueError(f"unknown balance {self.balance!r}; valid: {', '.join(BALANCES)}")

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if (reason := super().not_applicable(spec)) is not None:  # the augment mode (NeuralMethod)
            return reason
        if spec.divergence is None and spec.residual is None:
            return f"task {spec.name} publishes neither a divergence nor a residual to conserve"
        return None

    def k_not_supported(self, k: int, k_train: tuple[int, ...]) -> str | None:
        k0 = min(k_train)
        return None if k % k0 == 0 else f"the POD basis lives on the k={k0} grid; k={k} is not a multiple"

    # -- setup ------------------------------------------------------------------------
    def fit(self, train_data: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> NeuralMethod:
        self._spec, self._ctx = spec, ctx
        self._k0 = min(train_data.targets)
        y = torch.as_tensor(train_data.targets[self._k0], dtype=torch.float64)
        self._scale = y.std(dim=(0, 2, 3)).clamp_min(1e-12).view(1, -1, 1, 1)
        z = (y / self._scale).flatten(1)
        self._mean = z.mean(0)
        m = max(1, min(self.n_pod, z.shape[0] - 1, z.shape[1]))
        self._modes = torch.linalg.svd(z - self._mean, full_matrices=False)[2][:m].T  # (dof, m)
        self._levels: dict[int, dict[str, torch.Tensor]] = {}
        self.constraint_ = "divergence-free" if spec.divergence is not None else "none"
        self._c = 0.0
        if spec.divergence is None and self.balance != "off":
            self.constraint_ = self._setup_balance(train_data, spec)
        return super().fit(train_data, spec, budget, ctx)

    def _g(self, u: torch.Tensor, inputs: torch.Tensor, k: int) -> torch.Tensor:
        """Domain mean of the residual per sample ``(B,)``."""
        return self._spec.residual(u, inputs, k).reshape(u.shape[0], -1).mean(dim=1)

    def _setup_balance(self, train: Dataset, spec: TaskSpec) -> str:
        """Check that the balance is affine in ``u``; fit the closure slope ``c``."""
        a = torch.as_tensor(train.inputs[:4], dtype=torch.float64)
        gen = torch.Generator().manual_seed(0)
        u1, u2 = (torch.randn((len(a), spec.out_channels, *spec.coarse_shape(self._k0)), generator=gen,
                              dtype=torch.float64) for _ in range(2))
        gz = self._g(torch.zeros_like(u1), a, self._k0)
        defect = self._g(u1 + u2, a, self._k0) - self._g(u1, a, self._k0) - self._g(u2, a, self._k0) + gz
        size = (self._g(u1, a, self._k0) - gz).abs().max()
        if not bool(defect.abs().max() <= 1e-8 * size.clamp_min(1e-300)):
            self.balance_reason_ = f"mean residual is not affine in u (defect {float(defect.abs().max()):.2e})"
            return "none"
        if self.balance == "data":  # least squares of g(target) = c k over training factors
            a_all = torch.as_tensor(train.inputs, dtype=torch.float64)
            ks, gs = [], []
            for k, t in train.targets.items():
                g = self._g(torch.as_tensor(t, dtype=torch.float64), a_all, k)
                ks.append(float(k)), gs.append(float(g.mean()))
            self._c = float(np.dot(ks, gs) / np.dot(ks, ks))
        return f"global balance g_K = {self._c:.4g} K"

    def _level(self, k: int) -> dict[str, torch.Tensor]:
        """Constrained basis on grid k: mean ``(dof,)`` and orthonormal ``q (dof, r)``."""
        if k not in self._levels:
            if k % self._k0:
                raise NotApplicable(f"the POD basis lives on the k={self._k0} grid; k={k} is not a multiple")
            shape = (self._spec.out_channels, *self._spec.coarse_shape(self._k0))
            r = k // self._k0
            mean = restrict(self._mean.view(1, *shape), r).flatten()
            modes = restrict(self._modes.T.reshape(-1, *shape), r).flatten(1).T
            if self._spec.divergence is not None:
                v = _null_projector_rows(self._divergence_matrix(k))
                mean = mean - v.T @ (v @ mean)
                modes = modes - v.T @ (v @ modes)
            dev, dt = self._ctx.device, self._ctx.torch_dtype
            self._levels[k] = {"mean": mean.to(dev, dt), "q": _orthonormal(modes).to(dev, dt)}
        return self._levels[k]

    def _divergence_matrix(self, k: int) -> torch.Tensor:
        """Matrix of ``z -> divergence(scale * z, k)`` on grid k (the hook is linear)."""
        shape = (self._spec.out_channels, *self._spec.coarse_shape(k))
        n = int(np.prod(shape))
        rows = []
        for start in range(0, n, 1024):  # identity columns in chunks bound the memory
            eye = torch.eye(n, dtype=torch.float64)[start : start + 1024].reshape(-1, *shape)
            rows.append(torch.as_tensor(self._spec.divergence(eye * self._scale, k)).reshape(len(eye), -1))
        return torch.cat(rows).T

    # -- the constrained expansion ------------------------------------------------------
    def expand(self, y: torch.Tensor, inputs: torch.Tensor, k: int) -> torch.Tensor:
        """Project a physical field ``y (B, C, h, w)`` on grid k onto the constrained
        affine POD space; ``inputs`` are fine (or, for rollouts, grid-k) inputs."""
        lv = self._level(k)
        scale = self._scale.to(y.device, y.dtype)
        z = (y / scale).flatten(1) - lv["mean"]
        v = lv["mean"] + (z @ lv["q"]) @ lv["q"].T
        if self.constraint_.startswith("global balance"):
            v = self._balance(v, inputs, k, lv["q"], scale, y.shape)
        return v.reshape(y.shape) * scale

    def _balance(self, v: torch.Tensor, inputs: torch.Tensor, k: int, q: torch.Tensor,
                 scale: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """One exact correction ``v + t psi`` with ``g_k(v + t psi) = c k``."""
        if inputs.shape[-2:] == shape[-2:] and k > 1:  # grid-k inputs (rollout): lift them
            inputs = prolong(inputs, k)
        with torch.enable_grad():
            z0 = torch.zeros(shape, dtype=v.dtype, device=v.device, requires_grad=True)
            g0 = self._g(z0 * scale, inputs.detach(), k)
            (w,) = torch.autograd.grad(g0.sum(), z0)
        g0, w = g0.detach(), w.flatten(1)
        psi = (w @ q) @ q.T
        weak = psi.norm(dim=1) < 0.1 * w.norm(dim=1)  # the span cannot move the balance
        psi = torch.where(weak[:, None], w, psi)
        t = (self._c * k - g0 - (w * v).sum(1)) / (w * psi).sum(1)
        return v + t[:, None] * psi

    # -- NeuralMethod hooks ---------------------------------------------------------------
    def loss_terms(
        self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        out = self.model(x)
        raw = x * self._x_std + self._x_mean
        data = sum(rel_l2_loss(self.expand(self.decode(restrict(out, k)), raw, k), y) for k, y in ys.items())
        return {"data": data / len(ys)}

    def val_prediction(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
        return {k: p.mean for k, p in self.predict_normalised(x, ks).items()}

    def predict_normalised(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, Moments]:
        out = self.model(x)
        raw = x * self._x_std + self._x_mean
        preds = {}
        for k in ks:
            level = k * (self._spec.fine_shape[0] // x.shape[-2])  # coarse input: rollout step
            preds[k] = Moments(self.expand(self.decode(restrict(out, k)), raw, level))
        return preds

    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The constrained basis: POD mean, modes and channel scales, and the balance."""
        return ({"mean": self._mean, "modes": self._modes, "scale": self._scale},
                {"k0": self._k0, "c": self._c, "constraint": self.constraint_})

    def load_extra_state(self, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
        # The basis is built in float64 (fit); the projection casts per level.
        self._mean, self._modes, self._scale = (tensors[n].to(torch.float64) for n in ("mean", "modes", "scale"))
        self._k0, self._c, self.constraint_ = int(values["k0"]), float(values["c"]), str(values["constraint"])
        self._levels = {}

    def diagnostics(self) -> dict[str, Any]:
        extra = {"constraint": self.constraint_, "n_pod_used": int(self._modes.shape[1])}
        if hasattr(self, "balance_reason_"):
            extra["balance_off"] = self.balance_reason_
        return {**super().diagnostics(), **extra}


__all__ = ["EquiNO", "BALANCES"]
