"""`closure`: a learned correction inside the task's classical coarse solver, trained
through the solver (a-posteriori), in the spirit of solver-in-the-loop training (Um,
Brand, Fei, Holl & Thuerey, NeurIPS 2020) and of Kochkov et al. (PNAS 2021), whose
learned interpolation corrects the fluxes of a coarse finite-volume scheme.

The coarse solver is the task's own (``spec.coarse_solvers[base].differentiable``, in
torch and equal to the numpy solver to round-off): for turbulence the Smagorinsky LES that
``coarse_spectral`` runs, for convection its Fourier/finite-difference LES (the velocity
part of a correction is projected to be divergence-free there). One prediction at k::

    u_0 = R_k (fine input),    for n < N_k:  u_{n+1} = S_dt(u_n) + dt c_theta(u_n)

``S_dt`` one step of the coarse scheme, ``c_theta`` a small CNN on the coarse grid (circular
padding on periodic axes; the input normalised by the training statistics, the output
scaled back by the input's standard deviation per unit time), ``N_k`` steps of the
horizon. Training minimises the relative L2 error of ``omega_N`` against ``R_k`` of the
fine state one horizon later, with gradients through all ``N_k`` solver steps (the whole
horizon is unrolled); rollouts simply keep stepping. The last layer starts at zero, so an
untrained closure is the LES run with ``N_k`` steps (the same numbers as
``coarse_spectral`` wherever the LES's own batch CFL rule also gives ``N_k``), and
training can only move it by what the data support.

Differences from Kochkov et al.: the correction is a tendency added after each step
(operator splitting), not a learned interpolation of the advective fluxes; one network
serves every k (no k input, so it can answer at the unseen k); the CNN is small (9,857
parameters on turbulence, not the FNO's ~357k: it runs ``N_k`` times per prediction and
training differentiates through all of them, 52 steps at turbulence ``small`` k = 4,
which is what a CPU budget allows).

``N_k`` is fixed at fit time by the solver's own CFL rule on all training inputs at k (no
targets read), so a prediction never depends on which samples share its batch. The price:
every prediction and rollout step uses ``N_k`` without a new CFL check, so a test state
faster than every training state (more likely with few training samples, ``--n-train``)
steps above the CFL number the scheme was tuned for: less accurate, or a diverged cell,
never silently. Finding ``N_k`` runs the solver over the training set once per k (its
cost is part of ``train_s``). Written by hand: no library trains a correction through our
solvers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.ensemble import Moments
from methods.layers import pad_axes, periodic_axes
from methods.neural import NeuralMethod, rel_l2_loss
from nskernel import Budget, Context, Dataset, Prediction, TaskSpec
from nskernel.grid import restrict


class ClosureNet(nn.Module):
    """``depth`` 3x3 convolutions (GELU between) from the normalised coarse state to a
    tendency, padded per axis (circular where periodic); the last layer starts at zero."""

    def __init__(self, channels: int, width: int, depth: int, periodic: tuple[bool, bool]) -> None:
        super().__init__()
        sizes = [channels] + [width] * (depth - 1) + [channels]
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3) for i, o in zip(sizes[:-1], sizes[1:]))
        self.periodic = periodic
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            x = conv(pad_axes(x, 1, self.periodic))
            if i < len(self.convs) - 1:
                x = nn.functional.gelu(x)
        return x


class Closure(NeuralMethod):
    """A CNN correction after every step of the task's differentiable coarse solver,
    trained through the solver over a whole horizon; see the module docstring.

    ``base``: the coarse-solver family it corrects (``spectral``: the LES; ``fv`` where a
    task publishes it differentiably); ``width`` and
    ``depth`` of the CNN; ``lr`` lower than the operators' because every step feeds back."""

    name = "closure"
    summary = "learned correction inside the task's coarse solver (LES), trained through the solver"

    base: str = "spectral"
    width: int = 32
    depth: int = 3
    lr: float = 5e-4

    def check_params(self) -> None:
        super().check_params()
        self.check_positive_ints("width", "depth")

    def _differentiable(self, spec: TaskSpec) -> Callable[..., tuple[Any, int]] | None:
        solver = spec.coarse_solvers.get(self.base)
        return None if solver is None else solver.differentiable

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if (reason := super().not_applicable(spec)) is not None:  # the augment mode (NeuralMethod)
            return reason
        if not spec.time_dependent:
            return f"task {spec.name} is steady: a closure corrects the steps of a time-dependent coarse solver"
        if self._differentiable(spec) is None:
            have = sorted(f for f, s in spec.coarse_solvers.items() if s.differentiable is not None)
            return (f"task {spec.name} publishes no differentiable '{self.base}' coarse solver "
                    f"(CoarseSolver.differentiable); families with one: {', '.join(have) or 'none'}")
        return None

    # -- the network inside the solver ---------------------------------------------------
    def build_model(self, spec: TaskSpec) -> nn.Module:
        return ClosureNet(spec.in_channels, self.width, self.depth, periodic_axes(spec.boundary))

    def _step_counts(self, inputs: np.ndarray, spec: TaskSpec) -> dict[int, int]:
        """Steps per horizon at every k: the solver's CFL rule on all training inputs."""
        solve = self._differentiable(spec)
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float64, device=self._ctx.device)
        counts = {}
        with torch.no_grad():
            for k in spec.k_values:
                counts[k] = int(solve(restrict(x, k), steps=None)[1])
        return counts

    def fit(self, train_data: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> Closure:
        self._ctx = ctx
        self._steps = self._step_counts(train_data.inputs, spec)
        return super().fit(train_data, spec, budget, ctx)  # type: ignore[return-value]

    def _solve(self, coarse: torch.Tensor, k: int) -> torch.Tensor:
        """One horizon of the corrected solver from the physical coarse state at k."""
        net, dtype = self.model, self._ctx.torch_dtype

        def closure(omega: torch.Tensor) -> torch.Tensor:
            return net((omega.to(dtype) - self._x_mean) / self._x_std) * self._x_std

        out, _ = self._differentiable(self._spec)(coarse, closure=closure, steps=self._steps[k])
        return out.to(dtype)

    def _physical(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._x_std + self._x_mean

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        fine = self._physical(x)
        return {"data": sum(rel_l2_loss(self._solve(restrict(fine, k), k), y) for k, y in ys.items()) / len(ys)}

    def val_prediction(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
        fine = self._physical(x)
        return {k: self._solve(restrict(fine, k), k) for k in ks}

    def predict_normalised(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, Moments]:
        return {k: Moments(pred) for k, pred in self.val_prediction(x, ks).items()}

    @torch.no_grad()
    def advance(self, state: np.ndarray, k: int) -> Prediction:
        """Rollout step: the corrected solver from the coarse state itself."""
        with self.rollout_mode():
            parts = [self._solve(self._tensor(state[s : s + self._batch]), k).cpu().numpy()
                     for s in range(0, len(state), self._batch)]
        return Prediction(mean=np.concatenate(parts).astype(np.float64))

    # -- fitted state besides the network -------------------------------------------------
    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"steps": {str(k): n for k, n in self._steps.items()}}

    def load_extra_state(self, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
        self._steps = {int(k): int(n) for k, n in values["steps"].items()}


__all__ = ["Closure", "ClosureNet"]
