"""Costs of a fitted method: inference time per factor k and the speedup over the fine
solver, measured on the same batch, device and threads.

`FineTiming` measures the fine solver once per run directory and machine (every cell of
a task shares one denominator); the cell owns one and hands it to `time_inference`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import TimingCaps
from bench.ladder import Rung, breakeven, cost_at_error, error_at_cost
from bench.provenance import cpu_name
from bench.records import measurement, write_json_atomic
from bench.timing import measure
from nskernel import Context, Dataset, Factors, Method, TaskSpec


@dataclass(frozen=True)
class FineTiming:
    """The fine solver's wall time on a batch, cached in ``<run dir>/timing/`` under a key
    naming the task, size, device and threads, and re-measured on another CPU."""

    run_dir: Path
    key: str

    @classmethod
    def for_cell(cls, run_dir: str | Path, task: str, size: str, device: str, threads: int) -> FineTiming:
        return cls(Path(run_dir), f"{task}__{size}__{device}__t{threads}".replace(":", "_"))

    def path(self, batch: int) -> Path:
        return self.run_dir / "timing" / f"fine__{self.key}__n{batch}.json"

    def get(self, spec: TaskSpec, inputs: np.ndarray, ks: tuple[int, ...]) -> dict[str, Any]:
        """``{"fine_s", "timing", "solver", "cpu", "batch"}``: the fine solver producing
        every coarse target of ``inputs`` (restricted to each k in ``ks``)."""
        path = self.path(len(inputs))
        if path.exists():
            try:
                cached = json.loads(path.read_text())
                if cached.get("cpu") == cpu_name() and float(cached["fine_s"]) > 0:
                    return cached
            except (ValueError, KeyError, TypeError, AttributeError):
                pass  # a corrupt cache entry is re-measured, never used
        if spec.fine_solve is None:
            raise ValueError(f"task {spec.name} has no fine solver to time")
        fine_solve = spec.fine_solve

        def solve() -> None:
            u = fine_solve(inputs)
            for k in ks:
                spec.restrict(u, k)

        t = measure(solve, repeats=3)
        out = {"fine_s": t.median_s, "timing": t.to_dict(), "solver": spec.fine_solver_name, "cpu": cpu_name(),
               "batch": len(inputs)}
        write_json_atomic(path, out)
        return out


def _timed_call(method: Method, batch: np.ndarray, k: int) -> Callable[[], Any]:
    """The callable whose wall time is ``infer_s``. ``clear_cache()`` runs inside every
    timed call, so a method that reuses work across ``predict`` calls (per-instance
    solvers: one solve for every k) is timed doing the whole computation."""

    def call() -> None:
        method.clear_cache()
        method.predict(batch, k)

    return call


def time_inference(method: Method, spec: TaskSpec, test: Dataset, factors: Factors, ctx: Context,
                   caps: TimingCaps | None, fine: FineTiming) -> list[dict[str, Any]]:
    """``infer_s`` and ``speedup`` per k, and ``fine_s``, on the same batch and threads.

    The method's `TimingHints` set the batch (the fine solver is timed on the same
    batch), repeats, warm-up calls and retries under load; ``caps`` (per size; None: no
    caps) bound them (smoke: one timed call on 2 samples, no warm-up). A method whose
    cost does not depend on k (``k_independent``: one solve serves every factor) is
    timed at its first factor only, and that time is reported for every k, saying so."""
    hints = method.timing
    size = min(hints.batch, caps.batch) if caps else hints.batch
    batch = test.inputs[: min(size, len(test))]
    rows: list[dict[str, Any]] = []
    shared: tuple[Any, str] | None = None  # the one timing of a k-independent method
    if spec.fine_solve is None:
        fine_t = None
        rows.append(measurement("fine_s", np.nan, status="n/a", reason="task has no fine solver"))
    else:
        fine_t = fine.get(spec, batch, factors.test)
        rows.append(measurement("fine_s", fine_t["fine_s"], n=len(batch)))
    for k in factors.test:
        unseen = factors.unseen(k)
        reason = method.k_not_supported(k, factors.train)
        if reason:
            rows += [measurement(m, np.nan, k=k, unseen=unseen, status="n/a", reason=reason)
                     for m in ("infer_s", "speedup")]
            continue
        ctx.check_deadline(f"timing k={k}")
        if shared is None:
            t = measure(_timed_call(method, batch, k),
                        repeats=min(caps.repeats, hints.repeats) if caps else hints.repeats,
                        warmup=min(caps.warmup, hints.warmup) if caps else hints.warmup,
                        attempts=min(caps.attempts, hints.attempts) if caps else hints.attempts)
            note = "timed under load" if t.loaded or (fine_t and fine_t["timing"]["loaded"]) else ""
            if hints.k_independent:
                shared = (t, "; ".join(filter(None, [note, f"cost independent of k: timed at k={k}"])))
        else:
            t, note = shared
        rows.append(measurement("infer_s", t.median_s, k=k, unseen=unseen, n=len(batch), reason=note))
        if fine_t is None:
            rows.append(measurement("speedup", np.nan, k=k, unseen=unseen, status="n/a", reason="no fine solver"))
        else:
            rows.append(measurement("speedup", fine_t["fine_s"] / t.median_s, k=k, unseen=unseen, n=len(batch),
                                    reason=note))
    return rows


def equal_error_rows(rows: list[dict[str, Any]], rungs: list[Rung], factors: Factors,
                     overhead_s: float, failed: str = "") -> list[dict[str, Any]]:
    """The method against the classical ladder (`bench.ladder`) at every k, per sample:

    * ``equal_error_cost_ratio``: the classical frontier's cost at the method's rel_l2 /
      the method's inference cost (> 1: the method is cheaper at equal accuracy);
    * ``ladder_error_at_cost``: the frontier's rel_l2 at the method's inference cost;
    * ``breakeven_solves``: new solves after which ``overhead_s`` (data generation and
      training) plus inference costs less than classical solves at equal error.

    Off the ladder's range, without an error or a timing at k, or when the ladder
    ``failed`` (its reason), a row is n/a with why."""
    by = {(r["metric"], r["k"]): r for r in rows}
    names = ("equal_error_cost_ratio", "ladder_error_at_cost", "breakeven_solves")
    out: list[dict[str, Any]] = []
    for k in factors.test:
        unseen = factors.unseen(k)
        err, inf = by.get(("rel_l2", k)), by.get(("infer_s", k))
        if failed or not err or not inf or err["status"] != "ok" or inf["status"] != "ok":
            bad = next((r for r in (err, inf) if r and r["status"] != "ok"), None)
            why = failed or (bad or {}).get("reason") or "no error or no inference time at this k"
            out += [measurement(m, np.nan, k=k, unseen=unseen, status="n/a", reason=why) for m in names]
            continue
        method_s = inf["value"] / max(inf["n"], 1)
        classical_s, why = cost_at_error(rungs, k, err["value"])
        out.append(measurement(names[0], classical_s / method_s, k=k, unseen=unseen) if classical_s is not None
                   else measurement(names[0], np.nan, k=k, unseen=unseen, status="n/a", reason=why))
        at_cost, why_cost = error_at_cost(rungs, k, method_s)
        out.append(measurement(names[1], at_cost, k=k, unseen=unseen) if at_cost is not None
                   else measurement(names[1], np.nan, k=k, unseen=unseen, status="n/a", reason=why_cost))
        n, why_n = breakeven(overhead_s, classical_s, method_s) if classical_s is not None else (None, why)
        out.append(measurement(names[2], n, k=k, unseen=unseen) if n is not None
                   else measurement(names[2], np.nan, k=k, unseen=unseen, status="n/a", reason=why_n))
    return out


def timing_batch_size(caps: TimingCaps | None, default: int = 16) -> int:
    """The batch on which the fine solver and the classical ladder are timed."""
    return min(default, caps.batch) if caps else default
