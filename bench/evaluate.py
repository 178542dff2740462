"""Scoring a fitted method: metrics per factor k, and the speedup over the fine solver.

Every metric the suite knows yields a row for every k: a value, or ``n/a`` with the
reason (deterministic method, k the method cannot produce, task without the operator).
Nothing is silently dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.config import TIMING_CAPS, Context, TimingCaps
from bench.errors import Diverged, NotApplicable
from bench.metrics import METRICS, core
from bench.provenance import cpu_name
from bench.records import measurement, write_json_atomic
from bench.timing import measure
from methods.base import Method
from tasks.grid import restrict
from tasks.spec import Dataset, TaskSpec

if TYPE_CHECKING:
    from bench.cell import CellConfig

TIMING_BATCH = 16  # samples per timed call, the same for the fine solver and the method


def _metric_names(spec: TaskSpec) -> list[str]:
    return list(METRICS) + list(spec.extra_metrics)


def _na_rows(spec: TaskSpec, k: int, unseen: bool, reason: str) -> list[dict[str, Any]]:
    return [measurement(m, np.nan, k=k, unseen=unseen, status="n/a", reason=reason) for m in _metric_names(spec)]


def _stat_row(name: str, vals: np.ndarray, k: int, unseen: bool) -> dict[str, Any]:
    vals = np.asarray(vals, dtype=np.float64)
    if not np.isfinite(vals).all():
        raise Diverged(f"metric {name} is not finite at k={k}")
    return measurement(name, float(vals.mean()), k=k, unseen=unseen, std=float(vals.std()), n=len(vals),
                       samples=[float(v) for v in vals])


SNAPSHOT_SAMPLE = 0  # the fixed test sample whose fields every cell saves for figures


def evaluate(method: Method, spec: TaskSpec, test: Dataset, k_train: tuple[int, ...],
             k_test: tuple[int, ...], ctx: Context,
             artifacts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Metric rows for every k in ``k_test`` on the test set.

    If ``artifacts`` is given it is filled with what figures need beyond the table: the
    pooled calibration curve of probabilistic predictions per k (``calibration``) and
    the fields of test sample `SNAPSHOT_SAMPLE` (``snapshot``: input, and per k the
    target, mean and variance)."""
    rows: list[dict[str, Any]] = []
    artifacts = {} if artifacts is None else artifacts
    snap = artifacts.setdefault("snapshot", {"input": test.inputs[SNAPSHOT_SAMPLE]})
    calib = artifacts.setdefault("calibration", {})
    probabilistic = bool(getattr(method, "probabilistic", False))
    reasons = {k: method.k_not_supported(k, k_train) for k in k_test}
    ctx.check_deadline("predict")
    # One call for every supported k: methods share their work across factors.
    preds = method.predict_many(test.inputs, [k for k in k_test if not reasons[k]])
    for k in k_test:
        unseen = k not in k_train
        if reasons[k]:
            rows += _na_rows(spec, k, unseen, reasons[k])
            continue
        pred = preds[k]
        target = test.targets[k]
        if pred.mean.shape != target.shape:
            raise ValueError(f"{method.name} predicted shape {pred.mean.shape} at k={k}, expected {target.shape}")
        if not np.isfinite(pred.mean).all() or (pred.var is not None and not np.isfinite(pred.var).all()):
            raise Diverged(f"{method.name} predicted non-finite values at k={k}")
        snap[f"target_k{k}"], snap[f"mean_k{k}"] = target[SNAPSHOT_SAMPLE], pred.mean[SNAPSHOT_SAMPLE]
        if pred.var is not None and probabilistic:
            snap[f"var_k{k}"] = pred.var[SNAPSHOT_SAMPLE]
            calib[str(k)] = core.calibration_curve(pred.mean, pred.var, target).tolist()
        for name, metric in METRICS.items():
            why = metric.applies(spec)
            if metric.probabilistic and (pred.var is None or not probabilistic):
                why = "deterministic method (no predictive variance)"
            if why:
                rows.append(measurement(name, np.nan, k=k, unseen=unseen, status="n/a", reason=why))
                continue
            rows.append(_stat_row(name, metric.fn(pred, target, test.inputs, k, spec), k, unseen))
        for name, fn in spec.extra_metrics.items():
            rows.append(_stat_row(name, fn(pred.mean, target, test.inputs, k), k, unseen))
    return rows


def evaluate_rollouts(method: Method, spec: TaskSpec, test: Dataset, k_train: tuple[int, ...],
                      k_test: tuple[int, ...], ctx: Context, max_samples: int | None = None) -> list[dict[str, Any]]:
    """Coarse rollouts of time-dependent tasks: from ``R_k`` of a state, apply the
    method's coarse-to-coarse map repeatedly and score ``rollout_rel_l2@n`` at every
    horizon ``n`` in ``spec.rollout_horizons``, plus ``decorrelation_time``: the first
    horizon at which the relative error exceeds 1 (censored at the last horizon + 1).
    ``max_samples`` scores the first that many trajectories only (None: all)."""
    if not spec.time_dependent or not spec.rollout_horizons:
        return []
    names = [f"rollout_rel_l2@{n}" for n in spec.rollout_horizons] + ["decorrelation_time"]
    rows: list[dict[str, Any]] = []
    for k in k_test:
        unseen = k not in k_train
        traj = test.rollouts.get(k)
        if traj is not None and max_samples is not None:
            traj = traj[:max_samples]
        reason = None if traj is not None else "dataset has no filtered trajectories"
        reason = reason or method.k_not_supported(k, k_train)
        steps = max(spec.rollout_horizons)
        if reason is None:
            try:
                state, errors = traj[:, 0], []
                for _ in range(steps):
                    ctx.check_deadline(f"rollout k={k}")
                    state = method.advance(state, k).mean
                    if not np.isfinite(state).all():
                        raise Diverged(f"{method.name} rollout became non-finite at k={k}")
                    errors.append(core.rel_l2(state, traj[:, len(errors) + 1]))
            except NotApplicable as e:
                reason = str(e)
        if reason:
            rows += [measurement(m, np.nan, k=k, unseen=unseen, status="n/a", reason=reason) for m in names]
            continue
        err = np.stack(errors, axis=1)  # (N, steps)
        for n in spec.rollout_horizons:
            rows.append(_stat_row(f"rollout_rel_l2@{n}", err[:, n - 1], k, unseen))
        above = err > 1.0
        decor = np.where(above.any(axis=1), above.argmax(axis=1) + 1, steps + 1).astype(float)
        rows.append(_stat_row("decorrelation_time", decor, k, unseen))
    return rows


def fine_timing(spec: TaskSpec, inputs: np.ndarray, cfg: CellConfig) -> dict[str, Any]:
    """Time the fine solver producing every coarse target of a batch; cached per run
    directory and machine/threads/device, so every cell of a task shares one
    denominator measured under the same conditions."""
    key = f"{cfg.task}__{cfg.size}__{cfg.device}__t{cfg.threads}__n{len(inputs)}".replace(":", "_")
    path = Path(cfg.run_dir) / "timing" / f"fine__{key}.json"
    if path.exists():
        try:
            cached = json.loads(path.read_text())
            if cached.get("cpu") == cpu_name() and float(cached["fine_s"]) > 0:
                return cached
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # a corrupt cache entry is re-measured, never used
    assert spec.fine_solve is not None

    def solve() -> None:
        u = spec.fine_solve(inputs)
        for k in cfg.k_test:
            restrict(u, k)

    t = measure(solve, repeats=3)
    out = {"fine_s": t.median_s, "timing": t.to_dict(), "solver": spec.fine_solver_name, "cpu": cpu_name(),
           "batch": len(inputs)}
    write_json_atomic(path, out)
    return out


def _timed_call(method: Method, batch: np.ndarray, k: int) -> Callable[[], Any]:
    """The callable whose wall time is ``infer_s``. A method that caches work across
    ``predict`` calls (per-instance solvers reuse one solve for every k) declares
    ``clear_cache()``; it is called inside every timed call, so the time includes the
    whole solve."""
    clear = getattr(method, "clear_cache", None)

    def call() -> None:
        if clear is not None:
            clear()
        method.predict(batch, k)

    return call


def time_inference(method: Method, spec: TaskSpec, test: Dataset, cfg: CellConfig,
                   ctx: Context) -> list[dict[str, Any]]:
    """``infer_s`` and ``speedup`` per k, and ``fine_s``, on the same batch and threads.

    Methods may lower the cost of their own timing with the class attributes
    ``timing_batch`` (default `TIMING_BATCH`; the fine solver is timed on the same
    batch), ``timing_repeats`` (5), ``timing_warmup`` (1) and ``timing_attempts`` (3,
    retries under load): per-instance solvers (PINNs) time one call on one instance,
    which takes seconds to minutes, so repeats add nothing but wall time.
    ``bench.config.TIMING_CAPS`` caps repeats, attempts, warm-up calls and the batch
    per size (smoke: one timed call on 2 samples, no warm-up). A method whose cost does
    not depend on k (``timing_k_independent = True``: one solve serves every factor) is
    timed at its first factor only, and that time is reported for every k, saying so."""
    caps = TIMING_CAPS.get(cfg.size, TimingCaps(repeats=5, attempts=3, warmup=1, batch=TIMING_BATCH))
    batch = test.inputs[: min(int(getattr(method, "timing_batch", TIMING_BATCH)), caps.batch, len(test))]
    rows: list[dict[str, Any]] = []
    shared: tuple[Any, str] | None = None  # the one timing of a k-independent method
    if spec.fine_solve is None:
        fine = None
        rows.append(measurement("fine_s", np.nan, status="n/a", reason="task has no fine solver"))
    else:
        fine = fine_timing(spec, batch, cfg)
        rows.append(measurement("fine_s", fine["fine_s"], n=len(batch)))
    for k in cfg.k_test:
        unseen = k not in cfg.k_train
        reason = method.k_not_supported(k, cfg.k_train)
        if reason:
            rows += [measurement(m, np.nan, k=k, unseen=unseen, status="n/a", reason=reason)
                     for m in ("infer_s", "speedup")]
            continue
        ctx.check_deadline(f"timing k={k}")
        if shared is None:
            t = measure(_timed_call(method, batch, k),
                        repeats=min(caps.repeats, int(getattr(method, "timing_repeats", 5))),
                        warmup=min(caps.warmup, int(getattr(method, "timing_warmup", 1))),
                        attempts=min(caps.attempts, int(getattr(method, "timing_attempts", 3))))
            note = "timed under load" if t.loaded or (fine and fine["timing"]["loaded"]) else ""
            if getattr(method, "timing_k_independent", False):
                shared = (t, "; ".join(filter(None, [note, f"cost independent of k: timed at k={k}"])))
        else:
            t, note = shared
        rows.append(measurement("infer_s", t.median_s, k=k, unseen=unseen, n=len(batch), reason=note))
        if fine is None:
            rows.append(measurement("speedup", np.nan, k=k, unseen=unseen, status="n/a", reason="no fine solver"))
        else:
            rows.append(measurement("speedup", fine["fine_s"] / t.median_s, k=k, unseen=unseen, n=len(batch),
                                    reason=note))
    return rows
