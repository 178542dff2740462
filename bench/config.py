"""The harness's per-size policy tables: training budgets, timing caps, rollout samples
and cell time limits. The types they hold (`nskernel.Budget`) are contracts; the values
are policy, chosen by measurement (docs/architecture.md, "Sizes and budgets").
"""

from __future__ import annotations

from dataclasses import dataclass

from nskernel import Budget

# Budgets per size (docs/architecture.md, "Sizes and budgets"). Every size is bound by
# optimisation work, never by the clock, so its accuracy does not depend on the machine
# or its load; the time caps are safety guards only (a cell they stop is `truncated`).
# Every neural method of a task trains the same epochs (equal data passes): `smoke` 3
# (CI compares it to a committed reference), `small` what a 2-core CPU affords for the
# whole default matrix in under 2 hours (`TASK_BUDGETS`), `paper` 500 (a GPU). An equal
# counted compute is `bench run --flops F` (FLOPs turned into steps per method); it is not
# the default because on a CPU the methods' time per FLOP differs ~20x (NeuroScale does
# ~10x fewer FLOPs per step than the FNO but takes ~0.4x its time: an equal-FLOP budget
# gives it 10x the steps; benchmarks/budget_calibration.py). `bench run --epochs/--flops/
# --batch-size/--max-train-s` override a size's budget (part of each cell's identity, but
# the cap).
BUDGETS: dict[str, Budget] = {
    "smoke": Budget(epochs=3, max_train_s=60.0, batch_size=8, size="smoke", expected_s=1.5),
    "small": Budget(epochs=10, max_train_s=900.0, batch_size=16, size="small", expected_s=60.0),
    "paper": Budget(epochs=500, max_train_s=12 * 3600.0, batch_size=32, size="paper"),
}

# Per-task changes of a size's budget. At `small`, one epoch of the 128^2-point turbulence
# and convection grids costs ~8x one of Darcy's 64^2 on a 2-core CPU (measured with
# benchmarks/budget_calibration.py: FNO 43 s against 4.7 s per epoch), so they get 2
# epochs to Darcy's 10: the leaderboards of those tasks compare barely trained models,
# and say so (rows flagged "not converged"; `paper` on a GPU trains them properly).
TASK_BUDGETS: dict[str, dict[str, dict[str, float]]] = {
    "small": {"turbulence": {"epochs": 2, "expected_s": 100.0}, "convection": {"epochs": 2, "expected_s": 100.0}},
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
CELL_TIMEOUT_S: dict[str, float] = {"smoke": 300.0, "small": 1800.0, "paper": 16 * 3600.0}
