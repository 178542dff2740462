"""Cost of the registered Kuramoto task on a >= 1M-node graph: the fine solver, the
Ott-Antonsen coarse model and the learned graph methods' inference (issue #22).

Builds the task at ``--size paper`` (1.2M requested nodes; the largest component keeps
~1.1M) exactly as the harness would (`tasks.kuramoto.Kuramoto.graph`: Chung-Lu graph,
coupling matrix, partition levels k = 4, 8, 16), spins random phases up for ``--spinup``
time units, then times on a batch of ``--batch`` states:

* the fine solver over one sampling interval (``Kuramoto.fine_solve``, adaptive DP5);
* the Ott-Antonsen model per super-node at every level (``coarse_oa``), with its rel_l2
  against the restricted fine solution;
* each learned method's ``predict_many`` at every level (``--methods``), and its speedup
  over the fine solver on the same batch and threads.

The learned networks are built from the 1M-node spec with their default hyperparameters
and *untrained* weights (``fit`` with a zero-epoch budget on the batch itself, which only
sets the normalisation): a forward pass costs the same whatever the weights, but their
accuracy at 1M nodes is not what this script measures. Wall times are medians of
``--repeats`` calls (`bench.timing.measure`); peak memory is ``ru_maxrss`` after each
phase (it only grows). No time is asserted: this prints what this CPU does.

    OMP_NUM_THREADS=2 python benchmarks/kuramoto_scale.py [--size paper] [--threads 2]
        [--methods gnn,roma,deeponet_graph] [--batch 1] [--spinup T]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import time

import numpy as np
import torch

from bench.metrics import core
from bench.names import build_method
from bench.timing import measure
from nskernel import Budget, Context, Dataset
from tasks import TASKS
from tasks.kuramoto.solver import integrate, observables
from tasks.kuramoto.task import SPINUP_TOL


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def report(what: str, seconds: float, extra: str = "") -> None:
    print(f"{what:<44s} {seconds:9.3f} s   max RSS {rss_gib():5.2f} GiB   {extra}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="paper", choices=["smoke", "small", "paper"], help="the task's size preset")
    ap.add_argument("--nodes", type=int, help="override the preset's requested node count")
    ap.add_argument("--methods", default="gnn,roma,deeponet_graph", help="learned graph methods to time")
    ap.add_argument("--batch", type=int, default=1, help="states per timed call")
    ap.add_argument("--spinup", type=float, help="time units from random phases before timing (default: the "
                    "task's spin-up, 20 at small and paper, so that the state is the data's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    task = TASKS["kuramoto"].sized(args.size)
    if args.nodes:
        task = dataclasses.replace(task, nodes=args.nodes)
    task = task.with_threads(args.threads)
    spinup = task.spinup if args.spinup is None else args.spinup
    t0 = time.perf_counter()
    graph = task.graph
    dom = graph.domain
    sizes = ", ".join(f"k={k}: {dom.n_coarse(k)}" for k in dom.k_values)
    report("graph, coupling matrix, partition levels", time.perf_counter() - t0,
           f"{dom.n_nodes} nodes, {dom.edges.shape[1] // 2} edges; super-nodes {sizes}")
    spec = task.spec()

    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    phi, stats = integrate(rng.uniform(-np.pi, np.pi, (args.batch, dom.n_nodes)), graph.omega, task.coupling,
                           graph.w, np.array([0.0, spinup]), SPINUP_TOL, SPINUP_TOL)
    x = observables(phi[-1])
    r = np.hypot(x[:, 0].mean(-1), x[:, 1].mean(-1))
    report(f"spin-up, {spinup:g} time units (tol {SPINUP_TOL:g})", time.perf_counter() - t0,
           f"{stats.accepted} steps; global order parameter r = {np.round(r, 3)}")

    fine_out: list[np.ndarray] = []
    fine = measure(lambda: fine_out.append(task.fine_solve(x)), repeats=args.repeats, max_load=args.threads + 0.5)
    y = fine_out[-1]
    report(f"fine solve, one interval ({task.interval:g}), batch {args.batch}", fine.median_s,
           f"rtol {task.rtol:g}, atol {task.atol:g}")
    truth = {k: dom.restrict(y, k) for k in dom.k_values}

    for k in dom.k_values:
        t0 = time.perf_counter()
        task.oa_model(k)  # built once per level and cached, like the harness's first call
        build_s = time.perf_counter() - t0
        out: list[np.ndarray] = []
        t = measure(lambda k=k, out=out: out.append(task.oa_solve(x, k)), repeats=args.repeats,
                    max_load=args.threads + 0.5)
        err = float(core.rel_l2(out[-1], truth[k]).mean())
        persistence = float(core.rel_l2(dom.restrict(x, k), truth[k]).mean())
        report(f"coarse_oa, k={k}", t.median_s, f"model build {build_s:.2f} s; rel_l2 {err:.2e} "
               f"(persistence {persistence:.2e}); speedup {fine.median_s / t.median_s:.1f}x")

    ctx = Context(seed=0, threads=args.threads)
    xs = x.astype(np.float32)
    data = Dataset(inputs=x.astype(np.float32), targets={k: truth[k].astype(np.float32) for k in (4, 8)})
    for name in [m for m in args.methods.split(",") if m]:
        t0 = time.perf_counter()
        _, method = build_method(name)
        method.fit(data.for_training((4, 8)), spec, Budget(epochs=0, max_train_s=3600.0, batch_size=args.batch), ctx)
        build_s = time.perf_counter() - t0
        try:
            t = measure(lambda m=method: m.predict_many(xs, dom.k_values), repeats=args.repeats,
                        max_load=args.threads + 0.5)
        except RuntimeError as e:  # out of memory in a network layer: say so, time the others
            report(f"{name} inference, all k, batch {args.batch}", float("nan"), f"failed: {e}")
            continue
        report(f"{name} inference, all k, batch {args.batch}", t.median_s,
               f"build {build_s:.1f} s, {method.n_params()} parameters (untrained); "
               f"speedup {fine.median_s / t.median_s:.2f}x")


if __name__ == "__main__":
    main()
