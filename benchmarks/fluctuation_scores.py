"""How much of ``rel_l2`` is the static mean state? Prints ``rel_l2`` and ``fluct_rel_l2``
(docs/metrics.md) of simple predictors on the test split of the time-dependent tasks:
persistence (``R_k`` of the input state), the training-set mean target, and every coarse
classical solver of the task (on the first ``--solver-samples`` test samples: they cost
seconds each). Reads (or generates) the cached datasets of ``--size``.

    python benchmarks/fluctuation_scores.py [--tasks convection,turbulence] [--size small]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.data import default_data_dir, load_or_generate
from bench.metrics import core
from nskernel.grid import restrict
from tasks import TASKS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="convection,turbulence")
    ap.add_argument("--size", default="small")
    ap.add_argument("--solver-samples", type=int, default=16)
    args = ap.parse_args()
    for name in args.tasks.split(","):
        task = TASKS[name].sized(args.size)
        spec = task.spec()
        if not spec.time_dependent:
            raise SystemExit(f"{name} is not time-dependent; valid: "
                             + ", ".join(t for t, c in TASKS.items() if c.sized(args.size).spec().time_dependent))
        data, _, _ = load_or_generate(task, default_data_dir())
        test = slice(task.n_train, task.n_train + task.n_test)  # the harness's test split (bench/cell.py)
        x = data.inputs[test]
        for k in spec.k_values:
            y = data.targets[k][test]
            preds = {"persistence": restrict(x, k),
                     "training mean": np.broadcast_to(data.targets[k][: task.n_train].mean(0), y.shape)}
            for family, solver in spec.coarse_solvers.items():
                preds[f"coarse {family}"] = solver.solve(x[: args.solver_samples], k, **solver.params)
            for label, p in preds.items():
                t = y[: len(p)]
                print(f"{name:10s} k={k:2d} {label:16s} rel_l2 {core.rel_l2(p, t).mean():.3f}  "
                      f"fluct_rel_l2 {core.fluct_rel_l2(p, t, spec.climatology_axes).mean():.3f}  (n={len(p)})")


if __name__ == "__main__":
    main()
