"""What a FLOP budget means on this machine: counted training FLOPs per step and wall
seconds per step of every neural method on every task at a size, and the steps, epochs
and seconds a FLOP budget then buys.

The FLOP count (`methods.training.count_step_flops`) depends on shapes only, so the
steps a budget buys are the same on every machine; the seconds are this machine's.
Used to choose the `small` budget (docs/architecture.md, "Sizes and budgets").

    python benchmarks/budget_calibration.py [--size small] [--flops 2e13] [--tasks darcy,...]
"""

from __future__ import annotations

import argparse

import torch

from bench.config import BUDGETS
from bench.names import build_method, build_task
from methods import METHODS, VARIANTS
from methods.neural import NeuralMethod
from nskernel import Budget, Context


def measure(task_name: str, method_name: str, size: str) -> tuple[float, float, int]:
    """(FLOPs per step, seconds per step, n_train) of ``method_name`` on ``task_name``:
    the FLOPs counted on one step, the seconds from the learning curve of a 3-epoch fit
    of 4 steps each (after the first epoch, which carries one-off costs)."""
    _, task = build_task(task_name, size)
    spec = task.spec()
    bs = BUDGETS[size].batch_size
    data = task.generate(4 * bs, seed=123).for_training((4, 8))
    ctx = Context(seed=0, threads=torch.get_num_threads())
    ctx.apply()
    _, counted = build_method(method_name)
    counted.fit(data.subset(slice(0, bs)), spec, Budget(1, 1e9, bs, mode="flops", flops=1.0), ctx)
    flops = counted.member_logs[0].flops_per_step
    _, timed = build_method(method_name)
    members = timed.ensemble_size() or 1
    timed.fit(data, spec, Budget(3 * members, 1e9, bs), ctx)
    log = timed.member_logs[0]
    s_step = (log.at_s[-1] - log.at_s[0]) / (log.at_step[-1] - log.at_step[0])
    return float(flops), s_step, task.n_train


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="small")
    p.add_argument("--flops", type=float, default=BUDGETS["small"].flops)
    p.add_argument("--tasks", default="darcy,turbulence,convection")
    p.add_argument("--methods", default="")
    a = p.parse_args()
    names = a.methods.split(",") if a.methods else [
        n for n in [*METHODS, *VARIANTS] if issubclass(METHODS[n.split(":")[0]], NeuralMethod)]
    bs = BUDGETS[a.size].batch_size
    print(f"budget {a.flops:.3g} FLOPs, batch {bs}, {torch.get_num_threads()} threads")
    print(f"{'task':<11} {'method':<24} {'GFLOP/step':>10} {'s/step':>8} {'steps':>7} {'epochs':>7} {'train s':>8}"
          f" {'s/epoch':>8}")
    for t in a.tasks.split(","):
        for m in names:
            flops, s_step, n_train = measure(t, m, a.size)
            ens = build_method(m)[1].ensemble_size() or 1
            steps = int(a.flops / ens // flops) * ens  # every member gets 1/ens of the FLOPs
            epochs = steps / ens / -(-n_train // bs)
            per_epoch = -(-n_train // bs) * s_step * ens  # one epoch of every member
            print(f"{t:<11} {m:<24} {flops / 1e9:10.2f} {s_step:8.3f} {steps:7d} {epochs:7.1f} {steps * s_step:8.0f}"
                  f" {per_epoch:8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
