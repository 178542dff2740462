"""Cost of the Kuramoto pipeline on a >= 1M-node scale-free graph (tasks/kuramoto).

Times, on one core: graph generation (Chung-Lu + largest component), the degree-exponent
fit, the partition hierarchy, the coupling matrix, one fine-solver integration over one
sampling interval (SAMPLE_DT = 5e-3) for one sample from random phases, and one
Ott-Antonsen coarse step at level 2 over the same interval. Peak memory is ru_maxrss after
each phase (it only grows, so each line shows what that phase raised it to).

    OMP_NUM_THREADS=1 python benchmarks/kuramoto_scale.py [--nodes 1150000] [--levels 6]

The largest component keeps ~91% of ``--nodes`` at 1M and mean degree 8, hence the default.
No wall time is asserted.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from tasks.kuramoto.coarse import CoarseModel
from tasks.kuramoto.graphs import coupling_matrix, fit_power_law, partition_hierarchy, power_law_graph
from tasks.kuramoto.solver import RTOL, SAMPLE_DT, integrate


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1_150_000, help="Chung-Lu nodes before the largest component")
    ap.add_argument("--exponent", type=float, default=2.2)
    ap.add_argument("--mean-degree", type=float, default=8.0)
    ap.add_argument("--levels", type=int, default=6)
    ap.add_argument("--coupling", type=float, default=1.7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    def report(what: str, t0: float, extra: str = "") -> None:
        print(f"{what:<34s} {time.perf_counter() - t0:8.2f} s   max RSS {rss_gib():5.2f} GiB   {extra}", flush=True)

    t0 = time.perf_counter()
    adj = power_law_graph(args.nodes, args.exponent, args.mean_degree, seed=args.seed)
    n, edges = adj.shape[0], adj.nnz // 2
    report("graph (Chung-Lu, giant component)", t0, f"{n} nodes, {edges} edges, mean degree {2 * edges / n:.2f}")

    t0 = time.perf_counter()
    deg = np.asarray(adj.sum(axis=1)).ravel()
    alpha, kmin, tail = fit_power_law(deg)
    report(
        "degree exponent fit (discrete MLE)", t0, f"alpha {alpha:.3f}, k_min {kmin}, tail {tail}, max {deg.max():.0f}"
    )

    t0 = time.perf_counter()
    levels = partition_hierarchy(adj, args.levels, factor=4.0, seed=args.seed)
    sizes = ", ".join(f"{lv.n_super} (max {lv.sizes.max()})" for lv in levels[1:])
    report("partition hierarchy", t0, f"super-nodes per level: {sizes}")

    t0 = time.perf_counter()
    w = coupling_matrix(adj)
    report("coupling matrix W = D^-1 A", t0)

    rng = np.random.default_rng(args.seed)
    omega, phi0 = rng.standard_normal(n), rng.uniform(-np.pi, np.pi, (1, n))
    t0 = time.perf_counter()
    phi, stats = integrate(phi0, omega, args.coupling, w, np.array([0.0, SAMPLE_DT]))
    report(
        "fine solve, one interval, 1 sample",
        t0,
        f"rtol=atol={RTOL:g}, {stats.accepted} steps ({stats.rejected} rejected), {stats.rhs_calls} RHS",
    )

    lv = levels[min(2, len(levels) - 1)]
    t0 = time.perf_counter()
    model = CoarseModel.build(w, omega, lv.members)
    report("coarse model build (level 2)", t0, f"{lv.n_super} super-nodes, {model.wc.nnz} coarse couplings")
    t0 = time.perf_counter()
    z, stats = model.advance(model.restrict(phi0), args.coupling, np.array([0.0, SAMPLE_DT]))
    err = np.linalg.norm(z[-1] - model.restrict(phi[-1])) / np.linalg.norm(model.restrict(phi[-1]))
    report("coarse OA solve, one interval", t0, f"{stats.accepted} steps, rel. L2 vs restricted fine {err:.2e}")


if __name__ == "__main__":
    main()
