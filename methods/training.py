"""The one training loop shared by every neural method (it lives with the methods that
use it; the harness only passes it a `Budget` and a `Context`).

Methods differ only in their model and their loss; they hand this loop a closure that
maps a batch of sample indices to ``(loss, terms)``. The loop owns the optimiser, the
learning-rate schedule, gradient clipping, NaN/Inf detection (-> `Diverged`), the
graceful time limit of the `Budget`, the hard cell deadline of the `Context`
(-> `CellTimeout`) and the progress bar.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from nskernel import Budget, Context
from nskernel.errors import Diverged

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class TrainLog:
    """What happened during training; stored in the cell's record."""

    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    stopped: str = "completed"  # or "time_limit"
    loss: list[float] = field(default_factory=list)  # mean loss per epoch
    terms: dict[str, list[float]] = field(default_factory=dict)  # mean of each term per epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_logs(logs: list[TrainLog]) -> TrainLog:
    """One log for networks trained one after another (ensemble members): summed
    epochs/steps/seconds, the worst stop reason, and the per-epoch loss and terms
    averaged over the networks (over their common epochs)."""
    n = min(len(log.loss) for log in logs)
    return TrainLog(
        epochs=sum(log.epochs for log in logs),
        steps=sum(log.steps for log in logs),
        seconds=sum(log.seconds for log in logs),
        stopped="time_limit" if any(log.stopped != "completed" for log in logs) else "completed",
        loss=[float(np.mean([log.loss[e] for log in logs])) for e in range(n)],
        terms={t: [float(np.mean([log.terms[t][e] for log in logs])) for e in range(n)] for t in logs[0].terms},
    )


def train(
    params: Iterable[torch.nn.Parameter],
    loss_fn: LossFn,
    n_samples: int,
    *,
    budget: Budget,
    ctx: Context,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    grad_clip: float = 1.0,
    desc: str = "train",
) -> TrainLog:
    """Minimise ``loss_fn`` over shuffled mini-batches of ``range(n_samples)``.

    AdamW with a cosine learning-rate decay over the budget (epochs or wall clock,
    whichever binds first; see `progress`). Shuffling uses
    a generator seeded from ``ctx.seed`` so the same seed gives the same run. Training
    stops early (``stopped = "time_limit"``) once ``budget.max_train_s`` has passed.
    """
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    bs = max(1, min(budget.batch_size, n_samples))
    steps_per_epoch = math.ceil(n_samples / bs)
    total_steps = max(1, budget.epochs * steps_per_epoch)
    t0 = time.perf_counter()

    def progress(step: int) -> float:
        # Cosine decay over whichever budget runs out first (steps or wall clock), so a
        # run stopped by the time cap still ends annealed. When the step budget binds
        # (smoke runs, fast machines) the schedule, hence the result, is deterministic.
        if not budget.anneal_on_time:
            return min(1.0, step / total_steps)
        return min(1.0, max(step / total_steps, (time.perf_counter() - t0) / budget.max_train_s))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1.0 + math.cos(math.pi * progress(step))))
    gen = torch.Generator().manual_seed(ctx.seed)
    log = TrainLog()
    bar = tqdm(range(budget.epochs), desc=desc, disable=not ctx.progress, leave=False, unit="ep")
    for epoch in bar:
        total, seen, sums = 0.0, 0, {}  # type: float, int, dict[str, float]
        for idx in torch.randperm(n_samples, generator=gen).split(bs):
            loss, terms = loss_fn(idx)
            if not torch.isfinite(loss):
                raise Diverged(f"training loss became {loss.item()} at epoch {epoch}, step {log.steps}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            sched.step()
            log.steps += 1
            total += loss.item() * len(idx)
            for name, v in terms.items():
                sums[name] = sums.get(name, 0.0) + float(v) * len(idx)
            ctx.check_deadline("training")
            seen += len(idx)
            if time.perf_counter() - t0 > budget.max_train_s:
                log.stopped = "time_limit"
                break
        log.epochs = epoch + 1
        log.loss.append(total / max(seen, 1))
        for name, v in sums.items():
            log.terms.setdefault(name, []).append(v / max(seen, 1))
        bar.set_postfix(loss=f"{log.loss[-1]:.4g}")
        if log.stopped == "time_limit":
            break
    log.seconds = time.perf_counter() - t0
    return log
