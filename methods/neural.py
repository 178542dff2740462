"""`NeuralMethod`: the abstract base of every neural operator. It owns normalisation,
data on the device, training through the shared loop (`methods.training.train`), deep
ensembles through the one ensemble mechanism (`methods.ensemble`), batched prediction
and rollouts. A method declares its network (``build_model``) and its loss
(``loss_terms``); a probabilistic head overrides ``predict_normalised``, which serves
several factors k from one network pass.

Convention: the network maps the normalised fine input ``(B, C_in, H, W)`` to a field on
the fine grid, ``(B, C_out, H, W)``; the prediction at factor ``k`` is ``R_k`` of it.
Because ``R_k`` is linear and normalisation uses per-channel scalars, one network serves
every k, including a factor never seen in training.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from methods.ensemble import train_members
from methods.training import TrainLog, merge_logs, train
from nskernel import Budget, Context, Dataset, Method, Prediction, TaskSpec
from nskernel.errors import Diverged
from nskernel.grid import restrict


def rel_l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||pred - target|| / ||target|| (per sample)."""
    num = (pred - target).flatten(1).norm(dim=1)
    den = target.flatten(1).norm(dim=1).clamp_min(1e-12)
    return (num / den).mean()


def to_context(model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """Move to the context's device and dtype. ``Module.to(dtype)`` would also cast the
    complex spectral weights of Fourier layers to real, so cast each tensor by kind."""
    model = model.to(ctx.device)
    complex_dtype = {torch.float32: torch.complex64, torch.float64: torch.complex128}[ctx.torch_dtype]
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_complex():
            t.data = t.data.to(complex_dtype)
        elif t.is_floating_point():
            t.data = t.data.to(ctx.torch_dtype)
    return model


class NeuralMethod(Method):
    """Abstract base; every neural method declares ``lr`` and ``weight_decay`` (AdamW)."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    _rollout = False  # not a hyperparameter (unannotated): see `in_rollout`

    # -- what a neural method declares -------------------------------------------------
    @abc.abstractmethod
    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        """The network ``(B, C_in, H, W) -> (B, C_out', H, W)`` on the fine grid."""

    @abc.abstractmethod
    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms of a batch for the network being trained (``self.model``); their
        sum is minimised. ``x``: normalised inputs, ``ys``: targets per training factor
        (physical units), ``idx``: the batch's sample indices."""

    def ensemble_size(self) -> int | None:
        """Members of a deep ensemble (`methods.ensemble`), or None: one network trained
        on the cell's own seed and budget."""
        return None

    def data_loss(self, out: torch.Tensor, ys: dict[int, torch.Tensor]) -> torch.Tensor:
        """Relative L2 of the de-normalised ``R_k`` of the network output ``out`` against
        every training factor's target (the metric the suite reports), averaged over k."""
        return sum(rel_l2_loss(self.decode(restrict(out, k)), y) for k, y in ys.items()) / len(ys)

    def predict_normalised(
        self, x: torch.Tensor, ks: tuple[int, ...]
    ) -> dict[int, tuple[torch.Tensor, torch.Tensor | None]]:
        """Predictions of the normalised batch ``x`` at every factor in ``ks``, in
        physical units: ``{k: (mean, variance or None)}``. One network pass serves all k."""
        out = self.model(x)
        return {k: (self.decode(restrict(out, k)), None) for k in ks}

    def output_stats(self, train_data: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (mean, std) that `decode` applies. Default: those of the finest
        training target; label-free methods override it so that they never read targets."""
        y0 = train_data.targets[min(train_data.targets)]
        return y0.mean(axis=(0, 2, 3)), y0.std(axis=(0, 2, 3))

    # -- rollouts ------------------------------------------------------------------------
    @property
    def in_rollout(self) -> bool:
        """True while `advance` runs: a rollout is scored on its mean only, so stochastic
        predictors (MC dropout) may return the dropout-off mean there instead of paying
        for their sample passes at every step."""
        return self._rollout

    @contextmanager
    def rollout_mode(self) -> Iterator[None]:
        """Set `in_rollout` for the duration of one rollout step."""
        self._rollout = True
        try:
            yield
        finally:
            self._rollout = False

    # -- normalisation -------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._x_mean) / self._x_std

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._y_std + self._y_mean

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=self._ctx.torch_dtype, device=self._ctx.device)

    def _normalise(self, train_data: Dataset) -> None:
        x = train_data.inputs
        y_mean, y_std = self.output_stats(train_data)
        # Per-channel scalars keep R_k(decode(z)) == decode(R_k(z)) for every k.
        self._x_mean = self._tensor(x.mean(axis=(0, 2, 3))).view(1, -1, 1, 1)
        self._x_std = self._tensor(x.std(axis=(0, 2, 3)) + 1e-8).view(1, -1, 1, 1)
        self._y_mean = self._tensor(np.asarray(y_mean)).view(1, -1, 1, 1)
        self._y_std = self._tensor(np.asarray(y_std) + 1e-8).view(1, -1, 1, 1)

    # -- contract --------------------------------------------------------------------
    def fit(self, train_data: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> NeuralMethod:
        self._spec, self._ctx, self._batch = spec, ctx, budget.batch_size
        self._normalise(train_data)
        X = self.encode(self._tensor(train_data.inputs))
        Ys = {k: self._tensor(v) for k, v in train_data.targets.items()}
        n = self.ensemble_size()
        if n is None:
            trained = [self._train_network(X, Ys, budget, ctx)]
        else:
            trained = train_members(n, budget, ctx, lambda share, c: self._train_network(X, Ys, share, c))
        self.networks = [model for model, _ in trained]
        self.member_logs = [log for _, log in trained]
        self.train_log = self.member_logs[0] if n is None else merge_logs(self.member_logs)
        return self

    def _train_network(self, X: torch.Tensor, Ys: dict[int, torch.Tensor], budget: Budget,
                       ctx: Context) -> tuple[torch.nn.Module, TrainLog]:
        """Build one network (``self.model`` while it trains) and run the shared loop."""
        self.model = to_context(self.build_model(self._spec), ctx)
        self.model.train()

        def loss_fn(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            terms = self.loss_terms(X[idx], {k: y[idx] for k, y in Ys.items()}, idx)
            total = sum(terms.values())
            return total, {n: float(t.detach()) for n, t in terms.items()}

        log = train(self.model.parameters(), loss_fn, len(X), budget=budget, ctx=ctx, lr=self.lr,
                    weight_decay=self.weight_decay, desc=f"train {self.name}")
        self.model.eval()
        return self.model, log

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        return self._batched(inputs, (k,))[k]

    def predict_many(self, inputs: np.ndarray, ks: Sequence[int]) -> dict[int, Prediction]:
        return self._batched(inputs, tuple(ks))

    @torch.no_grad()
    def _batched(self, inputs: np.ndarray, ks: tuple[int, ...]) -> dict[int, Prediction]:
        means: dict[int, list[np.ndarray]] = {k: [] for k in ks}
        vars_: dict[int, list[np.ndarray]] = {k: [] for k in ks}
        for start in range(0, len(inputs), self._batch):
            x = self.encode(self._tensor(inputs[start : start + self._batch]))
            for k, (m, v) in self.predict_normalised(x, ks).items():
                means[k].append(m.cpu().numpy())
                if v is not None:
                    vars_[k].append(v.cpu().numpy())
        out = {}
        for k in ks:
            mean = np.concatenate(means[k]).astype(np.float64)
            if not np.isfinite(mean).all():
                raise Diverged(f"{self.name} predicted non-finite values at k={k}")
            var = np.concatenate(vars_[k]).astype(np.float64) if vars_[k] else None
            out[k] = Prediction(mean=mean, var=var)
        return out

    def estimate_s(self, budget: Budget) -> float:
        # Training is bound by its time cap at `small` and above; plus evaluation/timing.
        return budget.expected_train_s() + budget.expected_eval_s()

    @torch.no_grad()
    def advance(self, state: np.ndarray, k: int) -> Prediction:
        """Rollout step: the network applied to the coarse state on the coarse grid.
        Fourier-type operators are defined on functions, not grids, so the operator
        learned at the fine resolution can be evaluated at the coarse one (no R_k: the
        input already lives on the target grid)."""
        if not self._spec.time_dependent:
            return super().advance(state, k)
        with self.rollout_mode():
            return self._batched(state, (1,))[1]

    def n_params(self) -> int | None:
        return sum(p.numel() for net in self.networks for p in net.parameters() if p.requires_grad)

    def diagnostics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"train_log": self.train_log.to_dict()}
        if self.ensemble_size() is not None:
            out["member_logs"] = [log.to_dict() for log in self.member_logs]
        return out
