"""Critical coupling of the Kuramoto model on this suite's scale-free graphs, and the
one-interval error of the Ott-Antonsen coarse model near it (tasks/kuramoto).

1. r_infinity(K): `coupling_sweep` on one graph per size (all K in one batch, one sample of
   N(0, 1) frequencies and random phases, shared across K), time-averaged over
   ``[t_transient, t_transient + t_average]``; prints r and chi = n var_t(r) per K and the
   two K_c estimates of `CouplingSweep.critical_coupling`.
2. Coarse forecast at K = ``--coupling``: after a spin-up, the relative L2 error of the
   restricted local order parameters one and ten sampling intervals ahead, for the
   Ott-Antonsen model and for persistence (z(t + dt) = z(t)), at every level.

    OMP_NUM_THREADS=1 python benchmarks/kuramoto_kc.py [--nodes 5000 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tasks.kuramoto.coarse import CoarseModel
from tasks.kuramoto.graphs import coupling_matrix, partition_hierarchy, power_law_graph
from tasks.kuramoto.solver import K_MF, SAMPLE_DT, coupling_sweep, integrate


def sweep(nodes: int, couplings: np.ndarray, args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    w = coupling_matrix(power_law_graph(nodes, args.exponent, args.mean_degree, seed=args.seed))
    res = coupling_sweep(w, couplings, args.t_transient, args.t_average, 1.0, samples=1, seed=args.seed)
    print(f"\nn = {res.n} (giant component of {nodes}), {time.perf_counter() - t0:.0f} s")
    print("   K      r_inf     chi")
    for k, r, chi in zip(res.couplings, res.r, res.chi):
        print(f"{k:5.2f}  {r:8.4f}  {chi:7.3f}")
    peak, fit = res.critical_coupling()
    print(f"K_c: chi peak {peak:.2f}; r^2 linear fit {fit:.3f}   (annealed mean field {K_MF:.3f})")


def coarse_errors(nodes: int, args: argparse.Namespace) -> None:
    adj = power_law_graph(nodes, args.exponent, args.mean_degree, seed=args.seed)
    w, n = coupling_matrix(adj), adj.shape[0]
    rng = np.random.default_rng(args.seed + 1)
    omega, phi0 = rng.standard_normal((2, n)), rng.uniform(-np.pi, np.pi, (2, n))
    spin = args.t_transient
    times = spin + SAMPLE_DT * np.array([0.0, 1.0, 10.0])
    phi, _ = integrate(phi0, omega, args.coupling, w, np.r_[0.0, times])
    print(f"\ncoarse forecast, n = {n}, K = {args.coupling}, 2 samples after t = {spin:g}: rel. L2 of z")
    print("level  super-nodes   OA 1dt    persist 1dt   OA 10dt   persist 10dt")
    for level, lv in enumerate(partition_hierarchy(adj, 4, seed=args.seed)):
        model = CoarseModel.build(w, omega, lv.members)
        z0 = model.restrict(phi[1])
        z, _ = model.advance(z0, args.coupling, times)
        row = []
        for j in (1, 2):
            truth = model.restrict(phi[j + 1])
            row += [
                np.linalg.norm(z[j] - truth) / np.linalg.norm(truth),
                np.linalg.norm(z0 - truth) / np.linalg.norm(truth),
            ]
        print(f"{level:5d}  {lv.n_super:11d}   " + "  ".join(f"{e:.3e}" for e in row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--kmin", type=float, default=1.0)
    ap.add_argument("--kmax", type=float, default=2.6)
    ap.add_argument("--kstep", type=float, default=0.1)
    ap.add_argument("--exponent", type=float, default=2.2)
    ap.add_argument("--mean-degree", type=float, default=8.0)
    ap.add_argument("--t-transient", type=float, default=50.0)
    ap.add_argument("--t-average", type=float, default=100.0)
    ap.add_argument("--coupling", type=float, default=1.7, help="K of the coarse-forecast part")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    couplings = np.round(np.arange(args.kmin, args.kmax + 1e-9, args.kstep), 6)
    for nodes in args.nodes:
        sweep(nodes, couplings, args)
    coarse_errors(args.nodes[-1], args)


if __name__ == "__main__":
    main()
