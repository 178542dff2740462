"""The classical error-cost ladder of a task: what a classical solver costs at a given
accuracy, against which a learned method is measured at equal error.

For every coarse-graining factor k the ladder runs each of the task's classical solvers
(``TaskSpec.coarse_solvers``, the schemes behind ``coarse_fv`` / ``coarse_spectral``) on
the grids between the k-coarse grid and the fine grid, factors ``j = k, k/2, ..., 1``,
and restricts each output to the k grid (``R_{k/j}``). Each rung is a point (cost, error):
the wall time of the solve per sample, timed on the timing batch (the same batch,
device and threads as the methods' inference), and the mean relative L2 error on the
test set. A solve at factor j serves every k it divides, so each (solver, j) is solved and timed once. The
fine solver itself is the ladder's top rung (family ``"fine"``, j = 1, exact up to the
data's storage precision); Darcy's ``"fv"`` and turbulence's ``"dns"`` at j = 1 are the
same solver, convection's LES families keep their subgrid model there.

Computed once per run directory, CPU and thread count (``<run>/ladder/``), like the fine
solver's timing: the first cell of a task measures and saves it, later cells (and the
report's frontier figure) read it; `bench.costs.equal_error_rows` scores each method
against it.

Written by hand: the Pareto front and the log-log interpolation are a few lines of
NumPy, and no library we know measures PDE solvers against each other at equal error.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.metrics import core
from bench.provenance import cpu_name
from bench.records import write_json_atomic
from bench.timing import measure
from nskernel import CoarseSolver, Dataset, TaskSpec

LADDER_VERSION = 2
FINE = "fine"  # the family name of the fine solver's own rung


@dataclass(frozen=True)
class Rung:
    family: str  # the solver's family in TaskSpec.coarse_solvers
    j: int  # the grid the solver ran on (1: the fine grid)
    k: int  # the factor its output was restricted to and scored at
    error: float  # mean rel_l2 over the test samples
    cost_s: float  # wall time of the solve (and restriction) per sample, timed on a batch
    batch: int  # the timing batch


def rung_factors(k: int, spec: TaskSpec | None = None) -> list[int]:
    """``k, k/2, ..., 1``: the grids between the k-coarse grid and the fine grid (with
    ``spec``, only the factors it has: on a graph, its partition levels and 1)."""
    if spec is not None:
        return [j for j in rung_factors(k) if j == 1 or spec.supports_factor(j)]
    out, j = [], k
    while j >= 1:
        out.append(j)
        if j % 2:
            break
        j //= 2
    return out if out[-1] == 1 else [*out, 1]


def build_ladder(spec: TaskSpec, test: Dataset, ks: Sequence[int], batch: np.ndarray) -> list[Rung]:
    """Every rung of every classical solver of ``spec`` for the factors ``ks``."""
    rungs: list[Rung] = []
    for family, solver in spec.coarse_solvers.items():
        if solver.reference:  # not a coarse solver (the coarse-information floor): no rungs
            continue
        for j in sorted({j for k in ks for j in rung_factors(k, spec)}):
            targets = [k for k in ks if k % j == 0]
            out = np.asarray(solver.solve(test.inputs, j, **solver.params), dtype=np.float64)

            def solve(j: int = j, solver: CoarseSolver = solver, targets: list[int] = targets) -> None:
                u = solver.solve(batch, j, **solver.params)
                for k in targets:
                    spec.restrict(u, k, j)

            t = measure(solve, repeats=3)
            for k in targets:
                err = float(core.rel_l2(spec.restrict(out, k, j), test.targets[k]).mean())
                rungs.append(Rung(family, j, k, err, t.median_s / len(batch), len(batch)))
    if spec.fine_solve is not None:  # the fine solver itself: the top of every ladder
        fine_solve = spec.fine_solve
        out = np.asarray(fine_solve(test.inputs), dtype=np.float64)

        def solve_fine() -> None:
            u = fine_solve(batch)
            for k in ks:
                spec.restrict(u, k)

        t = measure(solve_fine, repeats=3)
        for k in ks:
            err = float(core.rel_l2(spec.restrict(out, k), test.targets[k]).mean())
            rungs.append(Rung(FINE, 1, k, err, t.median_s / len(batch), len(batch)))
    return rungs


def ladder_for(run_dir: Path, task: str, size: str, device: str, threads: int, spec: TaskSpec, test: Dataset,
               ks: Sequence[int], batch: np.ndarray) -> list[Rung]:
    """The task's ladder, from ``<run>/ladder/`` when it was measured on this CPU with
    these threads, else measured now and saved."""
    key = f"{task}__{size}__{device}__t{threads}__n{len(batch)}".replace(":", "_")
    path = Path(run_dir) / "ladder" / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Parallel cells of one task wait for the first to measure it, then read it: the
    # ladder of a turbulence run takes minutes, and timing it twice at once on a small
    # machine would also time each under the other's load.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = _read(path, ks)
        if saved is not None:
            return saved
        t0 = time.perf_counter()
        rungs = build_ladder(spec, test, ks, batch)
        write_json_atomic(path, {"version": LADDER_VERSION, "cpu": cpu_name(), "ks": list(ks), "threads": threads,
                                 "build_s": time.perf_counter() - t0, "rungs": [asdict(r) for r in rungs]})
    return rungs


def _read(path: Path, ks: Sequence[int]) -> list[Rung] | None:
    """The saved rungs when they were measured by this ladder version on this CPU for
    every factor in ``ks``; None otherwise (a corrupt entry is measured again, never used)."""
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        if saved.get("version") == LADDER_VERSION and saved.get("cpu") == cpu_name() \
                and set(saved.get("ks", [])) >= set(ks):
            return [Rung(**r) for r in saved["rungs"]]
    except (ValueError, KeyError, TypeError):
        pass
    return None


def _monotone(rungs: Sequence[Rung]) -> list[Rung]:
    """One solver's rungs from the coarsest grid to the finest, with each cost raised to
    at least the cost of the coarser grids: a finer grid is never cheaper, and a timing
    that says otherwise (a millisecond solve on a shared machine) is noise."""
    out: list[Rung] = []
    for r in sorted(rungs, key=lambda r: -r.j):
        out.append(r if not out or r.cost_s >= out[-1].cost_s else dataclasses.replace(r, cost_s=out[-1].cost_s))
    return out


def front(rungs: Sequence[Rung], k: int) -> list[Rung]:
    """The rungs at factor k that no other rung beats in both cost and error (the
    classical error-cost frontier), cheapest first; costs made monotone per solver."""
    families = {r.family for r in rungs if r.k == k}
    at_k = sorted((r for f in families for r in _monotone([r for r in rungs if r.k == k and r.family == f])),
                  key=lambda r: (r.cost_s, r.error))
    out: list[Rung] = []
    for r in at_k:
        if not out or r.error < out[-1].error:
            out.append(r)
    return out


def _interp_log(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Piecewise-linear interpolation in log-log coordinates (xs increasing)."""
    lx = np.log(np.asarray(xs))
    return float(np.exp(np.interp(math.log(x), lx, np.log(np.asarray(ys)))))


def cost_at_error(rungs: Sequence[Rung], k: int, error: float) -> tuple[float | None, str]:
    """What the classical frontier costs at ``error`` (seconds per sample), or None with
    the reason when ``error`` lies off its range."""
    f = front(rungs, k)
    if not f:
        return None, "the task has no classical solver to compare with"
    errs = [r.error for r in f]  # decreasing along the front, costs increasing
    if error < errs[-1]:
        return None, (f"more accurate ({error:.3g}) than the finest classical rung "
                      f"({f[-1].family}, j={f[-1].j}: {errs[-1]:.3g})")
    if error > errs[0]:
        return None, (f"less accurate ({error:.3g}) than the cheapest classical rung ({f[0].family}, j={f[0].j}: "
                      f"{errs[0]:.3g} at {f[0].cost_s:.3g} s): equal error lies off the ladder, at a cost below that")
    if len(f) == 1:
        return f[0].cost_s, ""
    # error decreases along the front: interpolate cost against error, both increasing in 1/error
    return _interp_log(1.0 / error, [1.0 / e for e in errs], [r.cost_s for r in f]), ""


def error_at_cost(rungs: Sequence[Rung], k: int, cost_s: float) -> tuple[float | None, str]:
    """The classical frontier's error at ``cost_s`` (seconds per sample), or None with the
    reason off its range."""
    f = front(rungs, k)
    if not f:
        return None, "the task has no classical solver to compare with"
    costs = [r.cost_s for r in f]
    if cost_s < costs[0]:
        return None, f"cheaper ({cost_s:.3g} s) than the cheapest classical rung ({costs[0]:.3g} s)"
    if cost_s > costs[-1]:
        return f[-1].error, ""  # more time than the finest rung needs: the finest rung's error
    if len(f) == 1:
        return f[0].error, ""
    return _interp_log(cost_s, costs, [r.error for r in f]), ""


def breakeven(overhead_s: float, classical_per_solve: float, method_per_solve: float) -> tuple[float | None, str]:
    """The number of new solves N after which data generation and training
    (``overhead_s``) plus N inferences cost less than N classical solves at equal error:
    ``N = overhead / (classical - method)`` per solve; None with the reason when the
    classical solve is not more expensive (the learned method never pays off)."""
    gain = classical_per_solve - method_per_solve
    if gain <= 0:
        return None, "never: at equal error the classical solver is not more expensive per solve"
    return overhead_s / gain, ""


__all__ = ["FINE", "Rung", "breakeven", "build_ladder", "cost_at_error", "error_at_cost", "front", "ladder_for",
           "rung_factors"]
