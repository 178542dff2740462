"""Where does a learned operator start to pay off? Times the fine solver (the speedup's
denominator) and each method's inference on fine grids from 64^2 up, prints the speedup
per grid, fits a power law cost ~ a N^p to each (N = grid points), and states the grid
at which the fitted speedup crosses 1.

Inference does not depend on what the weights learned, so the networks are untrained
(0 epochs): only their architecture and the grid matter. Inputs are the task's own
fields (Darcy: its coefficient law at each resolution; turbulence: a state generated at
the `small` grid and interpolated spectrally, which keeps its energy and so the fine
solver's CFL-limited step). Same process, same threads, same batch for all.

    python benchmarks/speedup_vs_resolution.py [--tasks darcy,turbulence] [--grids 64,128,256,512]
        [--methods fno,neuroscale] [--batch 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import numpy as np
import torch

from bench.names import build_method
from bench.timing import measure
from nskernel import Budget, Context, Dataset
from nskernel.grid import restrict
from tasks import TASKS


def task_at(name: str, n: int):  # noqa: ANN201 -- a task dataclass
    task = TASKS[name].sized("small")
    return dataclasses.replace(task, resolution=n)


def inputs_at(name: str, n: int, batch: int) -> tuple[object, np.ndarray]:
    task = task_at(name, n)
    if name == "turbulence":
        from tasks.numerics.spectral import resample

        base = TASKS[name].sized("small")
        state = base.generate(batch, seed=7).inputs.astype(np.float64)  # (B, 1, m, m) at the small grid
        return task, resample(state, n).astype(np.float32)
    return task, task.generate(batch, seed=7).inputs


def fitted(ns: list[int], secs: list[float]) -> tuple[float, float]:
    """(a, p) of secs ~ a N^p, N = n^2, by least squares in log-log."""
    p, loga = np.polyfit(np.log(np.asarray(ns, float) ** 2), np.log(secs), 1)
    return float(math.exp(loga)), float(p)


def crossover(af: float, pf: float, am: float, pm: float, grids: list[int]) -> str:
    """Where the fitted speedup ``(af/am) N^(pf - pm)`` crosses 1, in words."""
    lo, hi = grids[0], grids[-1]
    if abs(pf - pm) < 1e-3:
        return f"constant speedup {af / am:.3g} (same growth)"
    side = math.sqrt((am / af) ** (1.0 / (pf - pm)))  # the grid side n where the speedup is 1
    where = "inside" if lo <= side <= hi else "extrapolated beyond" if side > hi else "below"
    if pf > pm:  # the speedup grows with the grid
        if side < lo:
            return f"speedup > 1 across the measured range (crossing 1 below {lo}^2)"
        return f"speedup 1 at ~{side:.0f}^2 ({where} the measured range), above it at larger grids"
    if side < lo:
        return "speedup < 1 across the measured range and falling: never at larger grids"
    return f"speedup falls with the grid: below 1 from ~{side:.0f}^2 ({where} the measured range)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="darcy,turbulence")
    ap.add_argument("--grids", default="64,128,256,512")
    ap.add_argument("--methods", default="fno,neuroscale")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    grids = [int(g) for g in a.grids.split(",")]
    methods = a.methods.split(",")
    print(f"batch {a.batch}, {a.threads} threads; seconds per sample (median of 3); untrained networks")
    for name in a.tasks.split(","):
        fine_s: list[float] = []
        infer: dict[str, list[float]] = {m: [] for m in methods}
        for n in grids:
            task, x = inputs_at(name, n, a.batch)
            if hasattr(task, "threads"):
                task = dataclasses.replace(task, threads=a.threads)
            spec = task.spec()
            t = measure(lambda spec=spec, x=x: restrict(spec.fine_solve(x), 4), repeats=3, warmup=1)
            fine_s.append(t.median_s / a.batch)
            row = f"{name:<11} {n:>4}^2  fine {fine_s[-1]:9.4f} s"
            targets = {k: np.zeros((len(x), spec.out_channels, n // k, n // k), np.float32) for k in (4, 8)}
            for m in methods:
                _, method = build_method(m)
                reason = method.not_applicable(spec)
                if reason:
                    infer[m].append(math.nan)
                    row += f" | {m} n/a"
                    continue
                method.fit(Dataset(inputs=x, targets=targets), spec, Budget(0, 1e9, a.batch),
                           Context(threads=a.threads))
                ti = measure(lambda method=method, x=x: method.predict(x, 4), repeats=3, warmup=1)
                infer[m].append(ti.median_s / a.batch)
                row += f" | {m} {infer[m][-1]:8.4f} s, speedup {fine_s[-1] / infer[m][-1]:7.3f}"
            print(row, flush=True)
        af, pf = fitted(grids, fine_s)
        print(f"{name}: fine solver cost ~ N^{pf:.2f}")
        for m in methods:
            ok = [(g, s) for g, s in zip(grids, infer[m]) if math.isfinite(s)]
            if len(ok) < 2:
                continue
            am, pm = fitted([g for g, _ in ok], [s for _, s in ok])
            cross = crossover(af, pf, am, pm, grids)
            print(f"{name}: {m} cost ~ N^{pm:.2f}; {cross} (fitted; measured range {grids[0]}^2-{grids[-1]}^2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
