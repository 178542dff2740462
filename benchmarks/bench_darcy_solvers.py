"""Times the Darcy fine solvers on the same random two-phase samples.

    python benchmarks/bench_darcy_solvers.py [--sizes 128 256] [--samples 4] [--repeats 3]
    python benchmarks/bench_darcy_solvers.py --coarse [--resolution 64] [--samples 32]

For each grid size: every available solver (`tasks.spd_solve.available_solvers`) solves
the same samples, after a warm-up, under a BLAS/OpenMP thread limit of 1 and of 2
(threadpoolctl). Solvers are timed in interleaved rounds so that load from other
processes hits them alike. Reported: the best and the median over rounds of the
per-sample time; ratios use the best (the least disturbed by other processes, as the
floors, which are best of 20) against the fastest solver and two floors (a solver that
has used up ``--budget-s`` seconds stops taking part in further rounds):

* ``/poisson``: one fast Poisson solve (constant coefficient, two DSTs): no solver of
  the variable-coefficient problem can beat a solve of the constant-coefficient one;
* ``/matvec``: one sparse mat-vec ``A @ x`` (reading the matrix once).

``--coarse`` instead measures the coarse FV solver per upscaling mean: the mean rel. L2
error against ``R_k u`` and the truth's raw coarse flux-balance residual
``||B_k R_k u - f_k|| / ||f_k||`` (the closure error, `tasks.darcy.task.flux_imbalance`).

Ratios and errors only, no assertions: the numbers go in docs/darcy.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import scipy.fft
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nskernel.grid import restrict  # noqa: E402
from tasks.darcy import fv as fv2d  # noqa: E402
from tasks.darcy.task import MEANS, Darcy, coarse_fv_solve, flux_imbalance  # noqa: E402
from tasks.numerics.spd_solve import available_solvers  # noqa: E402


def per_sample(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n


def bench_size(res: int, samples: int, repeats: int, threads: tuple[int, ...], budget_s: float) -> None:
    task = Darcy(resolution=res)
    a = np.stack([task.coefficient(i, seed=0) for i in range(samples)])
    ref = fv2d.solve(a, task.forcing, solver="splu")
    pattern = fv2d.FVPattern(res, res)
    mat, x = pattern.matrix(a[0]), np.ones(res * res)
    inv_lam = 1.0 + np.arange(res)[:, None] + np.arange(res)[None, :]

    def poisson() -> None:
        spec = scipy.fft.dstn(a[0], type=2, norm="ortho", workers=1)
        scipy.fft.idstn(spec / inv_lam, type=2, norm="ortho", workers=1)

    cases: dict[str, Callable[[], object]] = {}
    for name in available_solvers():
        cases[name] = lambda name=name: fv2d.solve(a, task.forcing, solver=name)
    cases["pcg-dst/1"] = lambda: [fv2d.pcg_dst_solve(a[i : i + 1], task.forcing) for i in range(samples)]
    floors = {"poisson": poisson, "matvec": lambda: mat @ x, "assembly": lambda: pattern.matrix(a[0])}

    for name in ("cholmod", "splu", "pcg-dst", "pyamg", "spsolve"):
        if name in cases:
            err = np.abs(cases[name]() - ref).max() / np.abs(ref).max()
            print(f"  {res}^2 {name:8s} max rel. deviation from splu: {err:.1e}")
    print(f"\n{res}^2, {samples} samples, {repeats} interleaved rounds; load {os.getloadavg()[0]:.2f}")
    for nt in threads:
        with threadpool_limits(limits=nt):
            times: dict[str, list[float]] = {k: [] for k in [*cases, *floors]}
            for fn in [*cases.values(), *floors.values()]:
                fn()  # warm-up (imports, plans, caches)
            for _ in range(repeats):
                for k, fn in cases.items():
                    if sum(times[k]) * samples < budget_s:
                        times[k].append(per_sample(fn, samples))
                for k, fn in floors.items():
                    times[k].append(min(per_sample(fn, 1) for _ in range(20)))
        low = {k: float(np.min(v)) for k, v in times.items()}
        best = min(low[k] for k in cases)
        print(f"threads={nt}  floors: poisson {low['poisson'] * 1e3:.3f} ms, matvec {low['matvec'] * 1e3:.3f} ms, "
              f"assembly {low['assembly'] * 1e3:.3f} ms; load now {os.getloadavg()[0]:.2f}")
        head = ["best ms", "median ms", "/fastest", "/poisson", "/matvec"]
        print(f"  {'solver':10s} " + " ".join(f"{h:>9s}" for h in head) + " rounds")
        for k in sorted(cases, key=low.get):
            print(f"  {k:10s} {low[k] * 1e3:9.2f} {np.median(times[k]) * 1e3:9.2f} {low[k] / best:9.2f} "
                  f"{low[k] / low['poisson']:9.1f} {low[k] / low['matvec']:9.0f} {len(times[k]):6d}")


def bench_coarse(res: int, samples: int) -> None:
    ds = Darcy(resolution=res).generate(samples, seed=1)
    u = ds.fine.astype(np.float64)
    print(f"coarse FV solver, {res}^2, {samples} samples: mean (+- s.e.) over samples")
    print(f"  {'k':>3s} {'mean':10s} {'rel_l2':>16s} {'raw truth residual':>20s}")
    for k in (4, 8, 16):
        target = restrict(u, k)
        for mean in MEANS:
            p = coarse_fv_solve(ds.inputs, k, mean=mean)
            rel = np.linalg.norm((p - target).reshape(samples, -1), axis=1) / np.linalg.norm(
                target.reshape(samples, -1), axis=1
            )
            raw = flux_imbalance(target, ds.inputs, k, mean=mean)  # ||B_k R_k u - f_k|| / ||f_k||
            se = np.sqrt(samples)
            print(f"  {k:3d} {mean:10s} {rel.mean():8.4f} +- {rel.std() / se:.4f}"
                  f" {raw.mean():11.3f} +- {raw.std() / se:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--samples", type=int, default=None, help="default: 4 (solvers), 32 (--coarse)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--budget-s", type=float, default=20.0, help="time per solver and thread count")
    ap.add_argument("--coarse", action="store_true", help="measure the coarse solver's upscaling means")
    ap.add_argument("--resolution", type=int, default=64, help="fine grid of --coarse")
    args = ap.parse_args()
    if args.coarse:
        bench_coarse(args.resolution, args.samples or 32)
        return
    print(f"available solvers: {', '.join(available_solvers())}")
    for res in args.sizes:
        bench_size(res, args.samples or 4, args.repeats, tuple(args.threads), args.budget_s)


if __name__ == "__main__":
    main()
