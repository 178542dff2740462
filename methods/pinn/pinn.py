"""`pinn`: a physics-informed neural network (DeepXDE, PyTorch backend) that solves every
test instance on its own, from the task's continuous PDE (`nskernel.pointwise`); the
per-instance protocol (shared with `bpinn`) is `methods.pointwise_solver`.

Training: Adam with adaptive loss weights (a DeepXDE callback; gradient-norm balancing
by default, the learning-rate annealing of Wang, Teng & Perdikaris 2021 as an option),
then L-BFGS with the weights frozen (its curvature pairs assume a fixed objective).
Per-size budgets are in `PINN_SIZES`; see docs/pinn.md.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from methods.pinn.solver import PointwiseSolver, budget_size
from nskernel import Budget, Context, PointwisePDE
from nskernel.errors import Diverged

#: per-size defaults of the budget hyperparameters (a constructor value overrides them)
PINN_SIZES: dict[str, dict[str, Any]] = {
    # Every size is bound by its steps (results do not depend on the machine); the caps
    # only guard against a runaway solve, and a solve they stop makes the cell `truncated`.
    # `small` fits the default matrix's time on a 2-core CPU: 2 instances, 1000 + 300 steps.
    "smoke": {"instances": 2, "adam_steps": 100, "lbfgs_steps": 30, "n_collocation": 64, "time_slices": 2,
              "max_solve_s": 120.0},
    "small": {"instances": 2, "adam_steps": 1000, "lbfgs_steps": 300, "n_collocation": 1024, "time_slices": 4,
              "max_solve_s": 600.0},
    "paper": {"instances": 4, "adam_steps": 20000, "lbfgs_steps": 5000, "n_collocation": 16384, "time_slices": 8,
              "max_solve_s": 1800.0},
}
ADAM_SHARE = 0.7  # of the per-instance time cap; the rest is L-BFGS's


# ----------------------------------------------------------------------------- DeepXDE
def import_deepxde() -> Any:
    """DeepXDE on the PyTorch backend, selected here (never by a config file).

    Importing DeepXDE on a CUDA machine makes CUDA torch's default device, a process-wide
    change that would leak into every other method; the previous default is restored."""
    chosen = os.environ.get("DDE_BACKEND")
    if chosen not in (None, "pytorch"):
        raise RuntimeError(f"DDE_BACKEND={chosen!r} is set; the pinn method needs DDE_BACKEND=pytorch (or unset)")
    if "deepxde" not in sys.modules:
        os.environ["DDE_BACKEND"] = "pytorch"
        device = torch.get_default_device()
        with contextlib.redirect_stderr(io.StringIO()):  # "Using backend: ..." banner
            import deepxde  # noqa: F401 -- slow (seconds): imported only when a solve runs
        if torch.get_default_device() != device:
            # set_default_device(cpu) would install a per-op dispatch mode: None restores
            # the plain default instead.
            torch.set_default_device(None if device.type == "cpu" else device)
    import deepxde as dde

    if dde.backend.backend_name != "pytorch":
        raise RuntimeError(f"deepxde was already imported with backend {dde.backend.backend_name!r}")
    return dde


@contextlib.contextmanager
def deepxde_scope(dtype: torch.dtype, device: str) -> Iterator[Any]:
    """DeepXDE with float type ``dtype`` on ``device`` for the duration of a solve.

    DeepXDE keeps its float type in module state and sets torch's default dtype from it;
    both, and torch's default device, are restored on exit."""
    dde = import_deepxde()
    old_dtype, old_precision = torch.get_default_dtype(), dde.config.real.precision
    with contextlib.redirect_stdout(io.StringIO()):  # set_default_float prints
        dde.config.set_default_float({torch.float32: "float32", torch.float64: "float64"}[dtype])
    # The device context costs a Python call per torch op: enter it only when needed.
    same = torch.device(device) == torch.get_default_device()
    try:
        with contextlib.nullcontext() if same else torch.device(device):
            yield dde
    finally:
        {16: dde.config.real.set_float16, 32: dde.config.real.set_float32,
         64: dde.config.real.set_float64}[old_precision]()
        torch.set_default_dtype(old_dtype)


WEIGHTINGS: tuple[str, ...] = ("grad_norm", "max_mean", "none")


def annealed_weights(weights: Sequence[float], grads: Sequence[torch.Tensor], alpha: float,
                     rule: str = "grad_norm") -> list[float]:
    """One update of the adaptive loss weights from the parameter gradients ``grads[i]``
    of the unweighted terms ``L_i``: ``lambda_i <- (1 - alpha) lambda_i + alpha lambda_hat_i``.

    * ``"max_mean"`` (learning-rate annealing, Wang, Teng & Perdikaris 2021, Alg. 1):
      ``lambda_hat_i = max|grad L_0| / mean|grad L_i|`` for ``i > 0``; term 0 is the
      reference and keeps weight 1.
    * ``"grad_norm"`` (the symmetric form of Wang, Wang & Perdikaris 2023):
      ``lambda_hat_i = sum_j ||grad L_j|| / ||grad L_i||``, so every weighted term pulls
      with the same gradient norm; no term is privileged.

    Either way a term whose gradient is small next to the others gets a larger weight.
    A term with a zero gradient keeps its weight."""
    if rule == "max_mean":
        ref = float(grads[0].abs().max())
        stats = [float(g.abs().mean()) for g in grads]
        targets = [1.0] + [ref / m if m > 0 else None for m in stats[1:]]
    elif rule == "grad_norm":
        norms = [float(g.norm()) for g in grads]
        targets = [sum(norms) / n if n > 0 else None for n in norms]
    else:
        raise ValueError(f"unknown weighting {rule!r}; valid: {', '.join(WEIGHTINGS)}")
    return [lam if t is None else (1.0 - alpha) * lam + alpha * t for lam, t in zip(weights, targets)]


def annealing_callback(dde: Any, every: int, alpha: float, rule: str) -> Any:
    """A DeepXDE callback applying `annealed_weights` every ``every`` Adam steps.

    DeepXDE's PyTorch backend multiplies the loss terms by ``model.loss_weights`` at every
    step (it is read, not captured, in ``outputs_losses``), so assigning a new list
    changes the objective from the next step on."""

    class LossAnnealing(dde.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.history: list[list[float]] = []
            self.steps = 0

        def on_batch_end(self) -> None:
            self.steps += 1
            if self.steps % every:
                return
            model = self.model
            weights = list(model.loss_weights)
            model.loss_weights = None  # the raw terms
            try:
                _, losses = model.outputs_losses_train(
                    model.train_state.X_train, model.train_state.y_train, model.train_state.train_aux_vars)
            finally:
                model.loss_weights = weights
            params = [p for p in model.net.parameters() if p.requires_grad]
            flat = []
            for i in range(len(losses)):
                g = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
                flat.append(torch.cat([(x if x is not None else torch.zeros_like(p)).flatten()
                                       for x, p in zip(g, params)]))
            model.loss_weights = annealed_weights(weights, flat, alpha, rule)
            self.history.append([round(w, 6) for w in model.loss_weights])

    return LossAnnealing()


def time_cap_callback(dde: Any, deadline: float, ctx: Context) -> Any:
    """Stops training at ``deadline`` (``time.monotonic``), and raises `CellTimeout` once
    the cell's own deadline has passed."""

    class TimeCap(dde.callbacks.Callback):
        hit = False

        def on_batch_end(self) -> None:
            ctx.check_deadline("pinn solve")
            if time.monotonic() > deadline:
                self.hit = True
                self.model.stop_training = True

    return TimeCap()


def _network(dde: Any, pde: PointwisePDE, width: int, depth: int, modes: int, seed: int) -> Any:
    """A tanh MLP on the PDE's coordinate features, with its hard constraints."""
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global stream
        torch.manual_seed(seed)
        net = dde.nn.FNN([pde.embedded_dim(modes)] + [width] * depth + [len(pde.outputs)], "tanh", "Glorot normal")
    net.apply_feature_transform(lambda x: pde.embed(x, modes))
    net.apply_output_transform(pde.apply)
    return net


def solve_pinn(pde: PointwisePDE, sample: np.ndarray, s: dict[str, Any], seed: int,
               ctx: Context) -> tuple[np.ndarray, dict[str, Any]]:
    """Solve one instance; returns the network outputs at ``pde.eval_points`` ``(P, c)``
    and a log. ``s`` holds the settings (steps, collocation, network, annealing)."""
    rng = np.random.default_rng(seed)
    x_col = pde.collocation(rng, s["n_collocation"], time_slices=s["time_slices"])
    conditions = pde.soft_conditions(sample, s["n_collocation"], rng)
    with deepxde_scope(ctx.torch_dtype, ctx.device) as dde:
        # Only the dimension matters: the points come from `pde.collocation` as anchors.
        lower, upper = (list(b) for b in zip(*pde.bounds))
        geom = dde.geometry.Hypercube(lower, upper) if pde.dim > 1 else dde.geometry.Interval(lower[0], upper[0])
        bcs = [dde.icbc.PointSetBC(c.points, c.values, component=list(c.components)) for c in conditions]
        data = dde.data.PDE(geom, lambda x, y, aux: pde.residual(x, y, aux), bcs, num_domain=0, anchors=x_col,
                            auxiliary_var_function=lambda x: pde.coefficients(sample, x))
        net = _network(dde, pde, s["width"], s["depth"], s["modes"], seed)
        model = dde.Model(data, net)
        n_terms = len(pde.residual_names) + len(bcs)
        anneal = annealing_callback(dde, s["anneal_every"], s["anneal_alpha"], s["weighting"])
        # Adam may use ADAM_SHARE of the time cap, so L-BFGS (which gains most) keeps some.
        start = time.monotonic()
        adam_cap = time_cap_callback(dde, start + ADAM_SHARE * s["max_solve_s"], ctx)
        cap = time_cap_callback(dde, start + s["max_solve_s"], ctx)
        model.compile("adam", lr=s["lr"], loss_weights=[1.0] * n_terms, verbose=0)
        callbacks = [adam_cap] if s["weighting"] == "none" else [anneal, adam_cap]
        model.train(iterations=s["adam_steps"], display_every=max(1, s["adam_steps"]), callbacks=callbacks, verbose=0)
        adam_steps, adam_s = model.train_state.step, time.monotonic() - start
        lbfgs = s["lbfgs_steps"]
        if lbfgs > 0:
            dde.optimizers.config.set_LBFGS_options(maxiter=lbfgs)
            # L-BFGS runs in chunks so the time cap is checked between them.
            dde.optimizers.config.LBFGS_options["iter_per_step"] = min(50, lbfgs)
            dde.optimizers.config.LBFGS_options["fun_per_step"] = int(1.25 * min(50, lbfgs))
            model.compile("L-BFGS", loss_weights=list(model.loss_weights), verbose=0)
            model.train(display_every=10**9, callbacks=[cap], verbose=0)
        loss = np.asarray(model.train_state.loss_train, dtype=np.float64) / np.asarray(model.loss_weights)
        if not np.isfinite(loss).all():
            raise Diverged(f"pinn: loss became non-finite ({loss.tolist()})")
        net.eval()
        with torch.no_grad():
            x_eval = torch.as_tensor(pde.eval_points, dtype=ctx.torch_dtype)
            values = torch.cat([net(chunk) for chunk in x_eval.split(16384)]).cpu().numpy()
    log = {"adam_steps": int(adam_steps), "lbfgs_steps": int(model.train_state.step - adam_steps),
           "adam_s": round(adam_s, 3), "time_capped": adam_cap.hit or cap.hit, "n_collocation": len(x_col),
           "final_terms": [float(v) for v in loss], "weights": [round(w, 4) for w in model.loss_weights],
           "weight_history": anneal.history[-5:]}
    return values.astype(np.float64), log


class PINN(PointwiseSolver):
    """Physics-informed network per test instance (DeepXDE); see the module docstring.

    Budget hyperparameters left at ``None`` take the size's value from `PINN_SIZES`:
    the shared ones of `PointwiseSolver` and ``adam_steps``, ``lbfgs_steps``. Adaptive
    loss weights: ``weighting`` rule, updated every ``anneal_every`` Adam steps with
    moving-average rate ``anneal_alpha``.
    """

    name = "pinn"
    summary = "DeepXDE PINN per test instance, adaptive loss weights, Adam + L-BFGS"
    SIZES = PINN_SIZES

    adam_steps: int | None = None
    lbfgs_steps: int | None = None
    weighting: str = "grad_norm"
    anneal_every: int = 50
    anneal_alpha: float = 0.1

    def check_params(self) -> None:
        super().check_params()
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; valid: {', '.join(WEIGHTINGS)}")

    def warm_up(self) -> None:
        super().warm_up()
        import_deepxde()  # slow import (seconds), once per process

    def solve(self, sample: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        keys = ("width", "depth", "modes", "lr", "weighting", "anneal_every", "anneal_alpha")
        fixed = {k: getattr(self, k) for k in keys}
        values, log = solve_pinn(self._pde, sample, {**self._settings, **fixed}, seed, self._ctx)
        return self._pde.to_field(values, sample)[None], log

    def estimate_s(self, budget: Budget) -> float:
        # one solve per instance, then one timed solve; ~10 ms per Adam step
        s = self.settings(budget_size(budget))
        return (s["instances"] + 1) * min(s["max_solve_s"], 0.01 * (s["adam_steps"] + 2 * s["lbfgs_steps"]))
