"""`NeuralMethod`: the abstract base of every neural operator. It owns normalisation,
data on the device, training through the shared loop (`methods.training.train`), deep
ensembles through the one ensemble mechanism (`methods.ensemble`), batched prediction
and rollouts. A method declares its network (``build_model``) and its loss
(``loss_terms``); a probabilistic head overrides ``predict_normalised``, which serves
several factors k from one network pass.

Convention: the network maps the normalised fine input ``(B, C_in, H, W)`` to a field on
the fine grid, ``(B, C_out, H, W)``; the prediction at factor ``k`` is ``R_k`` of it.
Because ``R_k`` is linear and normalisation uses per-channel scalars, one network serves
every k, including a factor never seen in training. On a graph task (``spec.graph``) the
fields are node arrays ``(B, C, n)`` and ``R_k`` is the member mean (`TaskSpec.restrict`);
the same code serves both domains, and a method declares which it supports
(`Method.domains`).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from methods.augment import Augmenter, augment_reason, check_augment
from methods.checkpoint import read_checkpoint, spec_identity, tensor_state, write_checkpoint
from methods.ensemble import Moments, member_seed, mixture_draws, train_members
from methods.training import Schedule, TrainLog, late_gain, merge_logs, to_context, train
from nskernel import Budget, Context, Dataset, Method, Prediction, TaskSpec
from nskernel.errors import Diverged, NotApplicable


def rel_l2_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||pred - target|| / ||target|| (per sample)."""
    num = (pred - target).flatten(1).norm(dim=1)
    den = target.flatten(1).norm(dim=1).clamp_min(1e-12)
    return (num / den).mean()


_NORMALISATION = ("_x_mean", "_x_std", "_y_mean", "_y_std")


def _field_axes(a: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel axis 1: samples and the points of a field (grid or nodes)."""
    return (0, *range(2, a.ndim))


class NeuralMethod(Method):
    """Abstract base. Every neural method has the training hyperparameters ``lr`` and
    ``weight_decay`` (AdamW), ``schedule`` (`methods.training.Schedule`), ``augment``
    (`methods.augment`: "none", "group", "shift", "group+shift"; a mode the task cannot
    support makes the method n/a: a subclass's `not_applicable` starts from this one's) and
    ``amp`` (bf16 autocast while training, `methods.precision`); docs/training.md."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    augment: str = "none"
    amp: bool = False
    _rollout = False  # not a hyperparameter (unannotated): see `in_rollout`
    # Not a hyperparameter (unannotated): the moves of the training batch (`methods.augment`;
    # None: none). A loss reading per-sample data by ``idx`` moves them with ``.apply``.
    batch_transform = None
    # Not a hyperparameter: the share of the planned optimiser steps done when the current
    # loss is evaluated (set by the shared loop's ``progress`` callback; for schedules of
    # loss weights, e.g. NeuroScale's physics warm-up). Restored with a checkpoint's steps.
    train_progress = 0.0

    def check_params(self) -> None:
        Schedule(self.schedule)  # raises for an unknown schedule
        check_augment(self.augment)
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}")

    def not_applicable(self, spec: TaskSpec) -> str | None:
        return augment_reason(self.augment, spec)

    def check_positive_ints(self, *names: str) -> None:
        """Raise ``ValueError`` unless each named hyperparameter is an integer >= 1 (a
        bool is not): the size checks of the architectures' ``check_params``."""
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

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
        return sum(rel_l2_loss(self.decode(self._spec.restrict(out, k)), y) for k, y in ys.items()) / len(ys)

    def val_prediction(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
        """The mean prediction (physical units) of the network being trained at every k,
        for model selection. Default: ``R_k`` of its decoded output."""
        out = self.model(x)
        return {k: self.decode(self._spec.restrict(out, k)) for k in ks}

    def selection_error(self, x_val: torch.Tensor, ys_val: dict[int, torch.Tensor]) -> float:
        """The validation score that picks the kept epoch (lower is better): the mean over
        validation samples and training factors of the relative L2 error, the suite's
        metric. Label-free methods override it so that they never read targets."""
        ks = tuple(ys_val)
        total = 0.0
        for start in range(0, len(x_val), self._batch):
            preds = self.val_prediction(x_val[start : start + self._batch], ks)
            for k in ks:
                y = ys_val[k][start : start + self._batch]
                err = (preds[k] - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1).clamp_min(1e-12)
                total += float(err.sum())
        return total / (len(x_val) * len(ks))

    def predict_normalised(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, Moments]:
        """Predictions of the normalised batch ``x`` at every factor in ``ks``, in
        physical units (`methods.ensemble.Moments`: mean, variance or None, mixture
        components or None). One network pass serves all k."""
        out = self.model(x)
        return {k: Moments(self.decode(self._spec.restrict(out, k))) for k in ks}

    def output_stats(self, train_data: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (mean, std) that `decode` applies. Default: those of the finest
        training target; label-free methods override it so that they never read targets."""
        y0 = train_data.targets[min(train_data.targets)]
        return y0.mean(axis=_field_axes(y0)), y0.std(axis=_field_axes(y0))

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
        shape = (1, -1, *[1] * (x.ndim - 2))  # (1, C, 1, 1) on a grid, (1, C, 1) on a graph
        self._x_mean = self._tensor(x.mean(axis=_field_axes(x))).view(shape)
        self._x_std = self._tensor(x.std(axis=_field_axes(x)) + 1e-8).view(shape)
        self._y_mean = self._tensor(np.asarray(y_mean)).view(shape)
        self._y_std = self._tensor(np.asarray(y_std) + 1e-8).view(shape)

    # -- contract --------------------------------------------------------------------
    def fit(self, train_data: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> NeuralMethod:
        """Train with the shared loop; with a validation split in ``train_data`` the kept
        weights are those of the best validation epoch (per network of an ensemble)."""
        self._spec, self._ctx, self._batch = spec, ctx, budget.batch_size
        self._k_train = tuple(sorted(train_data.targets))
        self._normalise(train_data)
        X = self.encode(self._tensor(train_data.inputs))
        Ys = {k: self._tensor(v) for k, v in train_data.targets.items()}
        val = train_data.validation
        self._val = None
        if val is not None and len(val):
            self._val = (self.encode(self._tensor(val.inputs)), {k: self._tensor(v) for k, v in val.targets.items()})
        n = self.ensemble_size()
        if n is None:
            trained = [self._train_network(0, X, Ys, budget, ctx)]
        else:
            trained = train_members(n, budget, ctx, lambda m, share, c: self._train_network(m, X, Ys, share, c))
        self.networks = [model for model, _ in trained]
        self.member_logs = [log for _, log in trained]
        self.train_log = self.member_logs[0] if n is None else merge_logs(self.member_logs)
        return self

    def _train_network(self, index: int, X: torch.Tensor, Ys: dict[int, torch.Tensor], budget: Budget,
                       ctx: Context) -> tuple[torch.nn.Module, TrainLog]:
        """Build network ``index`` (``self.model`` while it trains) and run the shared loop."""
        self.model = to_context(self.build_model(self._spec), ctx)
        self.model.train()
        aug = Augmenter.maybe(self.augment, self._spec, tuple(Ys), ctx.seed)

        def loss_fn(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            terms = self.loss_terms(*self.training_batch(aug, X, Ys, idx), idx)
            total = sum(terms.values())
            return total, {n: float(t.detach()) for n, t in terms.items()}

        val_fn = None if self._val is None else (lambda: self.selection_error(*self._val))
        log = train(self.model, loss_fn, len(X), budget=budget, ctx=ctx, lr=self.lr, weight_decay=self.weight_decay,
                    schedule=self.schedule, val_fn=val_fn, checkpoint=self.checkpoint_path(ctx, f"net{index}"),
                    generators=[] if aug is None else [aug.generator], desc=f"train {self.name}", amp=self.amp,
                    progress=self._set_progress)
        self.model.eval()
        return self.model, log

    def _set_progress(self, step: int, total: int) -> None:
        self.train_progress = step / max(total, 1)

    def training_batch(self, aug: Augmenter | None, X: torch.Tensor, Ys: dict[int, torch.Tensor],
                       idx: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The batch ``idx`` as the loss sees it: normalised inputs, targets; moved by a
        fresh draw of ``aug`` unless it is None (`methods.augment.Augmenter.batch`)."""
        x, ys = X[idx], {k: y[idx] for k, y in Ys.items()}
        if aug is not None:
            self.batch_transform, x, ys = aug.batch(x, ys, self._x_mean, self._x_std)
        return x, ys

    @staticmethod
    def checkpoint_path(ctx: Context, part: str) -> Path | None:
        """Where the training state of one network or phase is kept (None: nowhere)."""
        return None if ctx.workdir is None else Path(ctx.workdir) / f"train-{part}.pt"

    # -- fitted state (methods.checkpoint) -------------------------------------------------
    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Fitted state that prediction needs besides the networks and normalisation
        (tensors, plain values); saved with the checkpoint. Default: none."""
        return {}, {}

    def load_extra_state(self, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
        """Put back what `extra_state` returned."""

    def save(self, directory: Path) -> bool:
        tensors, values = self.extra_state()
        write_checkpoint(directory, {
            "networks": [tensor_state(net) for net in self.networks],
            "norm": {n: getattr(self, n).detach().cpu() for n in _NORMALISATION},
            "extra": {k: v.detach().cpu() for k, v in tensors.items()},
        }, {"method": self.name, "params": self.get_params(), "k_train": list(self._k_train), "batch": self._batch,
            "n_networks": len(self.networks), "spec": spec_identity(self._spec), "extra": values})
        return True

    def restore(self, directory: Path, spec: TaskSpec, ctx: Context) -> NeuralMethod:
        state, meta = read_checkpoint(directory, {"method": self.name, "params": self.get_params(),
                                                  "spec": spec_identity(spec)}, defaults=self.param_defaults())
        if len(state["networks"]) != meta["n_networks"]:
            raise ValueError(f"checkpoint {directory}: {len(state['networks'])} networks, its metadata says "
                             f"{meta['n_networks']}")
        self._spec, self._ctx, self._batch = spec, ctx, int(meta["batch"])
        self._k_train = tuple(meta["k_train"])
        for name in _NORMALISATION:
            setattr(self, name, self._tensor(state["norm"][name]))
        self.load_extra_state({k: self._tensor(v) for k, v in state["extra"].items()}, meta["extra"])
        nets = []
        for weights in state["networks"]:
            with torch.random.fork_rng(devices=[]):  # building initialises weights: keep the caller's stream
                net = to_context(self.build_model(spec), ctx)
            try:
                net.load_state_dict(weights, strict=True)
            except RuntimeError as e:
                raise ValueError(f"checkpoint {directory}: the weights do not fit the network: {e}") from None
            nets.append(net.eval())
        self.networks, self.model = nets, nets[-1]
        self.member_logs, self.train_log = [], TrainLog()
        return self

    def late_validation_gain(self) -> float | None:
        gains = [g for g in (late_gain(log) for log in self.member_logs) if g is not None]
        return max(gains) if gains else None

    def truncation(self) -> str | None:
        cut = [i for i, log in enumerate(self.member_logs) if log.stopped == "truncated"]
        if not cut:
            return None
        log = self.member_logs[cut[0]]
        return (f"training stopped by the wall-clock safety cap after {log.steps} of {log.planned_steps} steps"
                + (f" (network {cut[0]})" if len(self.member_logs) > 1 else ""))

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        return self._batched(inputs, (k,))[k]

    def predict_many(self, inputs: np.ndarray, ks: Sequence[int]) -> dict[int, Prediction]:
        return self._batched(inputs, tuple(ks))

    @torch.no_grad()
    def _batched(self, inputs: np.ndarray, ks: tuple[int, ...]) -> dict[int, Prediction]:
        means: dict[int, list[np.ndarray]] = {k: [] for k in ks}
        vars_: dict[int, list[np.ndarray]] = {k: [] for k in ks}
        draws: dict[int, list[np.ndarray]] = {k: [] for k in ks}
        for start in range(0, len(inputs), self._batch):
            x = self.encode(self._tensor(inputs[start : start + self._batch]))
            for k, pred in self.predict_normalised(x, ks).items():
                means[k].append(pred.mean.cpu().numpy())
                if pred.var is not None:
                    vars_[k].append(pred.var.cpu().numpy())
                if pred.components is not None and not self.in_rollout:
                    # The noise of a draw depends on (seed, k, batch start) only, so that
                    # predict(inputs, k) and predict_many agree draw for draw.
                    rng = np.random.default_rng([member_seed(self._ctx.seed, 7), k, start])
                    cm, cv = pred.components
                    draws[k].append(mixture_draws(cm.cpu().numpy(), None if cv is None else cv.cpu().numpy(), rng))
        out = {}
        for k in ks:
            mean = np.concatenate(means[k]).astype(np.float64)
            if not np.isfinite(mean).all():
                raise Diverged(f"{self.name} predicted non-finite values at k={k}")
            var = np.concatenate(vars_[k]).astype(np.float64) if vars_[k] else None
            samples = np.concatenate(draws[k], axis=1) if draws[k] else None
            out[k] = Prediction(mean=mean, var=var, samples=samples)
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
        if self._spec.graph is not None:
            raise NotApplicable(f"{self.name} maps fields on the fine graph's nodes; a coarse state lives on "
                                f"super-nodes, a different graph")
        with self.rollout_mode():
            return self._batched(state, (1,))[1]

    def n_params(self) -> int | None:
        return sum(p.numel() for net in self.networks for p in net.parameters() if p.requires_grad)

    def diagnostics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"train_log": self.train_log.to_dict()}
        if self.ensemble_size() is not None:
            out["member_logs"] = [log.to_dict() for log in self.member_logs]
        return out
