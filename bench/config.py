"""Explicit run-time inputs: training budgets per size and the execution context.

Nothing here is global state: a `Context` is built by the runner from CLI options and
passed down to `Method.fit`, the training loop and the timing harness.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import torch

from bench.errors import CellTimeout


@dataclass(frozen=True)
class Budget:
    """How much training a neural method may do in one cell.

    ``epochs`` is the schedule length; ``max_train_s`` stops training early (gracefully,
    recorded in the train log) when the wall clock runs out first.
    """

    epochs: int
    max_train_s: float
    batch_size: int
    #: whether the wall clock may shorten the cosine schedule. False: the schedule runs
    #: over steps only (deterministic); the time cap still stops training, recorded as
    #: ``stopped = "time_limit"``.
    anneal_on_time: bool = True
    #: the benchmark size this budget belongs to (methods with their own per-size
    #: settings, e.g. the PINNs' step counts, look them up by it); "" for a custom budget
    size: str = ""

    def override(self, epochs: int | None = None, max_train_s: float | None = None) -> Budget:
        """This budget with the given fields replaced (None keeps a field): the
        ``--epochs`` / ``--max-train-s`` options of ``bench run``."""
        if epochs is not None and epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {epochs}")
        if max_train_s is not None and not max_train_s > 0:
            raise ValueError(f"max_train_s must be positive, got {max_train_s}")
        return replace(self, epochs=self.epochs if epochs is None else epochs,
                       max_train_s=self.max_train_s if max_train_s is None else max_train_s)

    def split(self, n: int) -> Budget:
        """The share of each of ``n`` networks trained one after another (ensemble
        members): ``1/n`` of the time cap and of the epochs, so an ensemble costs what
        one network costs. Epochs round up to at least one per member, so where epochs
        bind (smoke) an ensemble of ``n > epochs`` members costs ``n`` epochs."""
        if n < 1:
            raise ValueError(f"cannot split a budget into {n} shares")
        return replace(self, epochs=max(1, math.ceil(self.epochs / n)), max_train_s=self.max_train_s / n)


def expected_train_s(budget: Budget) -> float:
    """Rough training time for run plans: the time cap where it binds; for epoch-bound
    (smoke) budgets ~1 s per epoch, the measured order on a 2-core CPU."""
    return budget.max_train_s if budget.anneal_on_time else min(budget.max_train_s, 1.0 * budget.epochs)


def expected_eval_s(budget: Budget) -> float:
    """Rough scoring time of a neural method's cell (metrics, rollouts, timing) for run
    plans: ~2 s at the epoch-bound smoke size, ~10 s at the sizes bound by time."""
    return 10.0 if budget.anneal_on_time else 2.0


# Budgets per size (docs/architecture.md, "Sizes and budgets"). `smoke` is bound by
# epochs and its schedule ignores the clock (deterministic: CI compares it to a
# committed reference); its time cap only guards against a runaway cell. `small` gives
# every neural method the same wall-clock training budget (equal cost, so the comparison
# is fair); the full default matrix then takes ~1-1.5 h on an idle 2-core CPU (README).
# 25 s there is 1-5 epochs: small results are under-trained by design; `bench run
# --epochs/--max-train-s` override a size's budget (part of each cell's identity).
BUDGETS: dict[str, Budget] = {
    "smoke": Budget(epochs=3, max_train_s=60.0, batch_size=8, anneal_on_time=False, size="smoke"),
    "small": Budget(epochs=40, max_train_s=25.0, batch_size=16, size="small"),
    "paper": Budget(epochs=500, max_train_s=4 * 3600.0, batch_size=32, size="paper"),
}


@dataclass(frozen=True)
class TimingCaps:
    """Upper limits on a method's own inference-timing settings (bench.evaluate)."""

    repeats: int
    attempts: int
    warmup: int
    batch: int


# Caps on the inference timing per size. A smoke run checks that everything works; its
# grids are too small for speedups to mean anything, so one timed call per k on 2
# samples without a warm-up call (the first call carries one-off costs: allocations,
# FFT plans) is enough there. Other sizes use each method's settings.
TIMING_CAPS: dict[str, TimingCaps] = {"smoke": TimingCaps(repeats=1, attempts=1, warmup=0, batch=2)}

# Rollouts are scored on the first N test trajectories per size (None: all of them; the
# rows record n). Every rollout step is a full prediction, and at smoke, where the
# numbers only show that everything runs, rollouts were a quarter of the matrix's time.
ROLLOUT_SAMPLES: dict[str, int | None] = {"smoke": 4}

# Hard wall-clock limit per cell (training + evaluation + timing) before it is `timeout`.
CELL_TIMEOUT_S: dict[str, float] = {"smoke": 300.0, "small": 900.0, "paper": 12 * 3600.0}


@dataclass(frozen=True)
class Context:
    """Seed, device, dtype and threads for one cell, plus its deadline."""

    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 2
    progress: bool = False
    deadline: float | None = field(default=None, compare=False)  # time.monotonic() value

    @property
    def torch_dtype(self) -> torch.dtype:
        return {"float32": torch.float32, "float64": torch.float64}[self.dtype]

    def check_deadline(self, what: str = "cell") -> None:
        """Raise `CellTimeout` once the cell's wall-clock budget is spent."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise CellTimeout(f"{what} exceeded the cell time budget")

    def apply(self) -> None:
        """Make torch follow this context (threads, seed). Called by the runner per cell."""
        torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)
