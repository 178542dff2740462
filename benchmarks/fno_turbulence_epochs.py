"""How far is `fno` at `small` from converged on turbulence? (issue #3 check)

Trains `fno` on the Re 1e3 `small` data for a fixed number of epochs with no time cap
(cosine over steps), then scores one-step rel_l2 with the harness's `evaluate`, next to
`coarse_fv`. Usage: ``python benchmarks/fno_turbulence_epochs.py [EPOCHS]``. Prints the
numbers; nothing is asserted (a measurement, not a test).
"""

from __future__ import annotations

import os
import sys
import time

from bench.cell import CellConfig, dataset_for, train_test
from bench.names import build_method
from bench.scoring import evaluate, scored_metrics
from nskernel import Budget, Context, Factors


def main(epochs: int) -> None:
    factors = Factors((4, 8), (4, 8, 16))
    budget = Budget(epochs=epochs, max_train_s=1e9, batch_size=16, anneal_on_time=False)
    cfg = CellConfig(task="turbulence", method="fno", seed=0, size="small", factors=factors, budget=budget,
                     data_dir=os.environ.get("NEUROSCALE_DATA", os.path.expanduser("~/.cache/neuroscale-bench")))
    task, data, _ = dataset_for(cfg)
    spec = task.spec()
    train, test = train_test(task, data, factors.train)
    ctx = Context(seed=0, threads=2)
    ctx.apply()
    for name in ("coarse_fv", "fno"):
        _, method = build_method(name)
        t0 = time.perf_counter()
        method.fit(train, spec, budget, ctx)
        rows = evaluate(method, spec, test, factors, ctx, scored_metrics(task.metrics))
        rel = {r["k"]: r["value"] for r in rows if r["metric"] == "rel_l2"}
        print(f"{name:10s} epochs={epochs if name == 'fno' else '-'} fit+eval {time.perf_counter() - t0:6.1f} s  "
              f"rel_l2 k=4 {rel[4]:.3f}  k=8 {rel[8]:.3f}  k=16 {rel[16]:.3f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
