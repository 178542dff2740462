"""The one training loop shared by every neural method (it lives with the methods that
use it; the harness only passes it a `Budget` and a `Context`).

Methods differ only in their model and their loss; they hand this loop the model and a
closure that maps a batch of sample indices to ``(loss, terms)``. The loop owns:

* the step count: the budget's epochs, or its FLOPs divided by the counted cost of one
  training step (`methods.flops.count_step_flops`), so the same budget is the same steps
  everywhere;
* the optimiser (AdamW), the learning-rate schedule (`Schedule`), gradient clipping and
  NaN/Inf detection (-> `Diverged`);
* model selection: with a validation closure the model is scored on the validation
  split after every epoch and the best epoch's weights are kept (the learning curve,
  training loss and validation error against step and seconds, goes into the record);
* checkpoints: with a path, the whole training state (weights, optimiser, schedule,
  data order and random streams, curve, best weights) is written after an epoch at most
  every ``ctx.checkpoint_every_s`` seconds, and a run started again with the same path
  resumes from it and ends exactly where an uninterrupted run would;
* the wall-clock safety cap of the budget (``stopped = "truncated"``) and the cell's
  hard deadline (-> `CellTimeout`), and the progress bar;
* with ``amp``, bf16 autocast of the model's training forward passes (`methods.precision`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from methods.checkpoint import load_tensors, save_atomic, tensor_state
from methods.flops import count_step_flops
from methods.precision import mixed_precision
from nskernel import Budget, Context
from nskernel.errors import Diverged

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
CHECKPOINT_VERSION = 1


@dataclass
class TrainLog:
    """What happened during training; stored in the cell's record. The per-epoch lists
    are the learning curve: ``loss`` (training loss), ``val`` (validation error, empty
    without a validation split), ``at_step`` and ``at_s`` (steps and seconds done)."""

    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    planned_steps: int = 0
    flops_per_step: float | None = None
    stopped: str = "completed"  # or "truncated": the wall-clock safety cap ended training
    best_epoch: int | None = None  # 1-based epoch whose weights were kept (None: the last)
    resumed_at_epoch: int | None = None
    checkpoint_note: str = ""  # why a checkpoint found at the start was not used
    loss: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    at_step: list[int] = field(default_factory=list)
    at_s: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: a learning curve needs this many validation points before convergence is judged
MIN_EPOCHS_TO_JUDGE = 5


def late_gain(log: TrainLog) -> float | None:
    """How much the validation error still fell over the last fifth of training:
    ``(best before - best in the last fifth) / best before`` (<= 0: no more progress).
    None without a validation curve or with fewer than `MIN_EPOCHS_TO_JUDGE` points."""
    v = log.val
    if len(v) < MIN_EPOCHS_TO_JUDGE:
        return None
    n_last = max(1, math.ceil(len(v) / 5))
    before, last = min(v[:-n_last]), min(v[-n_last:])
    return (before - last) / before if before > 0 else 0.0


def merge_logs(logs: list[TrainLog]) -> TrainLog:
    """One log for networks trained one after another (ensemble members): summed
    epochs/steps/seconds, the worst stop reason, and the per-epoch curves averaged over
    the networks (over their common epochs); the members' own logs stay in the record."""
    n = min(len(log.loss) for log in logs)
    nv = min(len(log.val) for log in logs)
    return TrainLog(
        epochs=sum(log.epochs for log in logs),
        steps=sum(log.steps for log in logs),
        seconds=sum(log.seconds for log in logs),
        planned_steps=sum(log.planned_steps for log in logs),
        stopped="truncated" if any(log.stopped != "completed" for log in logs) else "completed",
        loss=[float(np.mean([log.loss[e] for log in logs])) for e in range(n)],
        val=[float(np.mean([log.val[e] for log in logs])) for e in range(nv)],
        at_step=[int(sum(log.at_step[e] for log in logs)) for e in range(n)],
        at_s=[float(sum(log.at_s[e] for log in logs)) for e in range(n)],
        terms={t: [float(np.mean([log.terms[t][e] for log in logs])) for e in range(n)] for t in logs[0].terms},
    )


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


# -- the schedule ----------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """The learning-rate factor against training progress: ``"cosine"`` (half a cosine
    from 1 to 0 over the planned steps) or ``"step:E:G"`` (multiplied by G every E
    epochs, e.g. ``step:100:0.5``, the schedule of Li et al. 2021)."""

    spec: str = "cosine"

    def __post_init__(self) -> None:
        parts = self.spec.split(":")
        ok = self.spec == "cosine" or (len(parts) == 3 and parts[0] == "step" and _positive(parts[1], parts[2]))
        if not ok:
            raise ValueError(f"unknown schedule {self.spec!r}; valid: cosine, step:EPOCHS:FACTOR (e.g. step:100:0.5)")

    def factor(self, step: int, total: int, steps_per_epoch: int) -> float:
        if self.spec == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / max(total, 1))))
        _, every, gamma = self.spec.split(":")
        return float(gamma) ** (step // (steps_per_epoch * int(every)))


def _positive(*texts: str) -> bool:
    try:
        return all(float(t) > 0 for t in texts)
    except ValueError:
        return False


# -- checkpoints -----------------------------------------------------------------------
def _rng_state(devices: Sequence[torch.device]) -> dict[str, Any]:
    return {"cpu": torch.get_rng_state(), "cuda": [torch.cuda.get_rng_state(d) for d in devices]}


def _set_rng_state(state: dict[str, Any], devices: Sequence[torch.device]) -> None:
    torch.set_rng_state(state["cpu"])
    for d, s in zip(devices, state["cuda"]):
        torch.cuda.set_rng_state(s, d)


def _resumable(path: Path, total: int, model: torch.nn.Module, opt: torch.optim.Optimizer,
               sched: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    """The training state in ``path``, checked against this run before anything is
    applied (version, planned steps, the shapes of the weights and of the optimiser's
    groups); raises ValueError if it cannot resume this run."""
    state = load_tensors(path)
    keys = {"version", "planned", "model", "opt", "sched", "gen", "generators", "rng", "log", "best", "best_val"}
    if not isinstance(state, dict) or not keys <= set(state):
        raise ValueError(f"checkpoint {path} is incomplete")
    if state["version"] != CHECKPOINT_VERSION or state["planned"] != total:
        raise ValueError(f"checkpoint {path} belongs to another training run ({state['planned']} planned steps, "
                         f"this run {total})")
    ours = tensor_state(model)
    if set(state["model"]) != set(ours) or any(state["model"][k].shape != v.shape for k, v in ours.items()):
        raise ValueError(f"checkpoint {path} holds weights of another network")
    if len(state["opt"].get("param_groups", ())) != len(opt.param_groups):
        raise ValueError(f"checkpoint {path} holds another optimiser state")
    try:
        TrainLog(**state["log"])
    except TypeError as e:
        raise ValueError(f"checkpoint {path} has an unreadable log: {e}") from None
    return state


# -- the loop --------------------------------------------------------------------------
def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    n_samples: int,
    *,
    budget: Budget,
    ctx: Context,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    grad_clip: float = 1.0,
    schedule: str = "cosine",
    val_fn: Callable[[], float] | None = None,
    checkpoint: Path | None = None,
    generators: Sequence[torch.Generator] = (),
    desc: str = "train",
    amp: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TrainLog:
    """Minimise ``loss_fn`` over shuffled mini-batches of ``range(n_samples)``; see the
    module docstring. Shuffling uses a generator seeded from ``ctx.seed``, so the same
    seed gives the same run. ``generators``: other random generators the loss draws from
    (saved in checkpoints with the rest). ``amp``: the model's forward passes in training
    mode run under bf16 autocast (`methods.precision.mixed_precision`). ``progress(step,
    total)`` is called before each loss evaluation (steps done, planned; a resumed run
    continues from its checkpoint's count), for loss-weight schedules. Returns the log;
    the model ends with the weights of the best validation epoch (the last without ``val_fn``)."""
    with mixed_precision(model, torch.device(ctx.device).type, ctx.torch_dtype, enabled=amp):
        return _train(model, loss_fn, n_samples, budget, ctx, lr, weight_decay, grad_clip, schedule, val_fn,
                      checkpoint, generators, desc, progress)


def _train(model: torch.nn.Module, loss_fn: LossFn, n_samples: int, budget: Budget, ctx: Context, lr: float,
           weight_decay: float, grad_clip: float, schedule: str, val_fn: Callable[[], float] | None,
           checkpoint: Path | None, generators: Sequence[torch.Generator], desc: str,
           progress: Callable[[int, int], None] | None = None) -> TrainLog:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    bs = max(1, min(budget.batch_size, n_samples))
    steps_per_epoch = math.ceil(n_samples / bs)
    gen = torch.Generator().manual_seed(ctx.seed)
    log = TrainLog()
    if budget.mode == "flops" and n_samples:
        log.flops_per_step = count_step_flops(loss_fn, params, torch.arange(min(bs, n_samples)))
        total = max(1, int(budget.flops // log.flops_per_step))
    else:
        total = budget.epochs * steps_per_epoch
    log.planned_steps = total
    sched_of = Schedule(schedule)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: sched_of.factor(step, total, steps_per_epoch))
    devices = [torch.device(ctx.device)] if ctx.device.is_cuda else []
    best: dict[str, torch.Tensor] | None = None
    best_val = math.inf
    start_epoch, spent = 0, 0.0
    if checkpoint is not None and checkpoint.exists():
        try:
            state = _resumable(checkpoint, total, model, opt, sched)
        except ValueError as e:  # corrupt or foreign: never trusted, train from scratch
            warnings.warn(f"{e}; training from scratch", stacklevel=2)
            checkpoint.unlink(missing_ok=True)
            log.checkpoint_note = str(e)
        else:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            gen.set_state(state["gen"])
            for g, s in zip(generators, state["generators"]):
                g.set_state(s)
            _set_rng_state(state["rng"], devices)
            log = TrainLog(**state["log"])
            best, best_val = state["best"], float(state["best_val"])
            start_epoch, spent = log.epochs, log.seconds
            log.resumed_at_epoch = start_epoch
    n_epochs = math.ceil(total / steps_per_epoch) if steps_per_epoch else 0
    t0, last_save = time.perf_counter() - spent, time.perf_counter()
    bar = tqdm(range(start_epoch, n_epochs), desc=desc, disable=not ctx.progress, leave=False, unit="ep")
    for epoch in bar:
        if log.stopped != "completed":
            break
        sums, seen = {"": 0.0}, 0
        for idx in torch.randperm(n_samples, generator=gen).split(bs):
            if log.steps >= total:
                break
            if progress is not None:
                progress(log.steps, total)
            loss, terms = loss_fn(idx)
            if not torch.isfinite(loss):
                raise Diverged(f"training loss became {loss.item()} at epoch {epoch + 1}, step {log.steps}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            sched.step()
            log.steps += 1
            seen += len(idx)
            sums[""] += loss.item() * len(idx)
            for name, v in terms.items():
                sums[name] = sums.get(name, 0.0) + float(v) * len(idx)
            ctx.check_deadline("training")
            if time.perf_counter() - t0 > budget.max_train_s:
                log.stopped = "truncated"
                break
        log.epochs = epoch + 1
        log.loss.append(sums.pop("") / max(seen, 1))
        for name, v in sums.items():
            log.terms.setdefault(name, []).append(v / max(seen, 1))
        if val_fn is not None:
            model.eval()
            with torch.no_grad():
                v = float(val_fn())
            model.train()
            log.val.append(v)
            if v < best_val:  # NaN never wins
                best_val, log.best_epoch = v, epoch + 1
                best = {k: t.detach().clone() for k, t in tensor_state(model).items()}
        log.at_step.append(log.steps)
        log.at_s.append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{log.loss[-1]:.4g}", **({"val": f"{log.val[-1]:.4g}"} if log.val else {}))
        last = epoch + 1 == n_epochs or log.stopped != "completed"
        if checkpoint is not None and (last or time.perf_counter() - last_save >= ctx.checkpoint_every_s):
            log.seconds = time.perf_counter() - t0
            save_atomic({"version": CHECKPOINT_VERSION, "planned": total, "model": tensor_state(model),
                         "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                         "generators": [g.get_state() for g in generators], "rng": _rng_state(devices),
                         "log": log.to_dict(), "best": best, "best_val": best_val}, checkpoint)
            last_save = time.perf_counter()
    log.seconds = time.perf_counter() - t0
    if best is not None:
        model.load_state_dict(best)
    return log


__all__ = ["LossFn", "Schedule", "TrainLog", "late_gain", "merge_logs", "to_context", "train"]
