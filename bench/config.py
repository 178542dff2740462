"""The harness's per-size policy tables: training budgets, timing caps, rollout samples
and cell time limits. The types they hold (`nskernel.Budget`) are contracts; the values
are policy, chosen by measurement (docs/architecture.md, "Sizes and budgets").
"""

from __future__ import annotations

from dataclasses import dataclass

from nskernel import Budget

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
    """Upper limits on a method's own inference-timing settings (bench.costs)."""

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
