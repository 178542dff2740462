"""`pino`: physics-informed neural operator (Li, Zheng, Kovachki, Jin, Chen, Liu,
Azizzadenesheli & Anandkumar, "Physics-Informed Neural Operator for Learning Partial
Differential Equations", ACM/IMS J. Data Sci. 2024).

The `fno` network trained on the data loss plus the task's discrete PDE residual of its
fine-grid output: ``L = data + w * physics``, ``data`` the relative L2 of ``R_k`` of the
output against every training target (as `fno`), ``physics`` the per-sample RMS of
``spec.residual(u, a, physics_k)`` (residuals are scaled by the tasks so that ``u = 0``
gives O(1)). ``weighting="fixed"`` uses ``w = physics_weight``; ``"relobralo"`` or
``"softadapt"`` let neuraloperator's adaptive aggregators set the weights each step.

Where this differs from the paper: PINO evaluates exact or spectral derivatives of the
FNO output on the training inputs and on extra virtual inputs; here the residual is the
task's own finite-volume / finite-difference residual (the operator whose solution the
targets are), on the same training inputs, and no instance-wise fine-tuning is done.
"""

from __future__ import annotations

from typing import Any

import torch

from methods.fno_family.base import FourierOperator
from nskernel import TaskSpec
from nskernel.grid import restrict

WEIGHTINGS: tuple[str, ...] = ("fixed", "relobralo", "softadapt")


def residual_rms(spec: TaskSpec, u: torch.Tensor, inputs: torch.Tensor, k: int) -> torch.Tensor:
    """Per-sample RMS ``(B,)`` of the task's residual of ``u`` on grid ``k``."""
    r = spec.residual(u, inputs, k)
    return r.reshape(u.shape[0], -1).pow(2).mean(dim=1).sqrt()


class PINO(FourierOperator):
    name = "pino"
    summary = "FNO + the task's PDE residual on the fine grid (Li et al.)"

    physics_weight: float = 0.01
    weighting: str = "fixed"
    physics_k: int = 1

    def check_params(self) -> None:
        super().check_params()
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; valid: {', '.join(WEIGHTINGS)}")

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if (reason := super().not_applicable(spec)) is not None:  # the augment mode (NeuralMethod)
            return reason
        if spec.residual is None:
            return f"task {spec.name} publishes no PDE residual"
        return None

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        spec.coarse_shape(self.physics_k)  # fail early on a factor that does not divide
        self._step, self._agg = 0, None
        return super().build_model(spec)

    def _aggregator(self) -> Any:
        """neuraloperator's aggregator, built on first use (on the model's device)."""
        if self._agg is None:
            from neuralop.losses.meta_losses import Relobralo, SoftAdapt

            cls = Relobralo if self.weighting == "relobralo" else SoftAdapt
            self._agg = cls(list(self.model.parameters()), num_losses=2)
        return self._agg

    def physics_loss(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the residual RMS of the decoded network output."""
        u = restrict(self.decode(out), self.physics_k)
        raw = x * self._x_std + self._x_mean  # the residual needs physical inputs
        return residual_rms(self._spec, u, raw, self.physics_k).mean()

    def loss_terms(
        self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        out = self.model(x)
        data = self.data_loss(out, ys)
        physics = self.physics_loss(out, x)
        if self.weighting == "fixed":
            return {"data": data, "physics": self.physics_weight * physics}
        # The aggregator returns sum_i c * lambda_i * L_i with detached weights; split it
        # back into named terms so the train log keeps both.
        total, lam = self._aggregator()({"data": data, "physics": physics}, self._step)
        self._step += 1
        lam = lam.detach().to(data.dtype)
        scale = (total / (lam[0] * data + lam[1] * physics)).detach()
        return {"data": scale * lam[0] * data, "physics": scale * lam[1] * physics}


__all__ = ["PINO", "residual_rms", "WEIGHTINGS"]
