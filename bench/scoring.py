"""Scoring a fitted method on the test set: every scored metric at every factor k, and
coarse rollouts of time-dependent tasks.

Every metric yields a row for every k: a value, or ``n/a`` with the reason (a
requirement of the metric not met, a k the method cannot produce). Nothing is silently
dropped; only metrics that the task itself can never have (`nskernel.Metric.unmet_by_task`:
a time-dependent score on a steady task, like the rollouts) are left out of its results.
The metrics are the suite's scores (`bench.metrics.METRICS`, those with a function)
followed by the task's own (``Task.metrics``), handed over by the cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.metrics import METRICS, core
from bench.records import measurement
from nskernel import Context, Dataset, Factors, Method, Metric, TaskSpec
from nskernel.errors import Diverged, NotApplicable

SNAPSHOT_SAMPLE = 0  # the fixed test sample whose fields every cell saves for figures
ROLLOUT = METRICS["rollout_rel_l2"]
DECORRELATION = METRICS["decorrelation_time"]
CORRELATION, CORR_TIME = METRICS["rollout_corr"], METRICS["corr_time_095"]
CORR_LEVEL = 0.95  # the threshold of corr_time_095 (Kochkov et al. 2021)


def scored_metrics(task_metrics: Sequence[Metric] = ()) -> list[Metric]:
    """The metrics computed from a prediction, in column order: the suite's scores, then
    a task's own (``Task.metrics``)."""
    return [m for m in METRICS.values() if m.fn is not None] + list(task_metrics)


def validation_score(method: Method, val: Dataset | None, ks: Sequence[int], ctx: Context) -> dict[str, Any]:
    """The score of a tuning trial (`bench.tune`): the suite's ``rel_l2`` of the method's
    mean prediction on the validation split, at the training factors ``ks`` only (an
    unseen factor stays unseen), averaged over samples and factors, as the neural methods'
    own model selection (`NeuralMethod.selection_error`) defines it. Never the test split."""
    if val is None or not len(val):
        raise NotApplicable("the task has no validation split to score a tuning trial on")
    ctx.check_deadline("predict")
    preds = method.predict_many(val.inputs, list(ks))
    per_k = [float(core.rel_l2(preds[k].mean, val.targets[k]).mean()) for k in ks]
    if not np.isfinite(per_k).all():
        raise Diverged("the validation rel_l2 is not finite")
    return {"metric": "rel_l2", "split": "validation", "k": list(ks), "per_k": per_k,
            "value": float(np.mean(per_k)), "n": len(val)}


def _na_rows(names: list[str], k: int, unseen: bool, reason: str) -> list[dict[str, Any]]:
    return [measurement(m, np.nan, k=k, unseen=unseen, status="n/a", reason=reason) for m in names]


def _stat_row(name: str, vals: np.ndarray, k: int, unseen: bool) -> dict[str, Any]:
    vals = np.asarray(vals, dtype=np.float64)
    if not np.isfinite(vals).all():
        raise Diverged(f"metric {name} is not finite at k={k}")
    return measurement(name, float(vals.mean()), k=k, unseen=unseen, std=float(vals.std()), n=len(vals),
                       samples=[float(v) for v in vals])


def _pooled_row(name: str, value: float, n: int, k: int, unseen: bool) -> dict[str, Any]:
    """A pooled metric: one statistic of all ``n`` samples' points (no per-sample values,
    so no spread and no bootstrap interval)."""
    if not np.isfinite(value):
        raise Diverged(f"metric {name} is not finite at k={k}")
    return measurement(name, float(value), k=k, unseen=unseen, n=n)


def evaluate(method: Method, spec: TaskSpec, test: Dataset, factors: Factors, ctx: Context,
             metrics: Sequence[Metric], artifacts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows of every metric in ``metrics`` (`scored_metrics`) for every k in
    ``factors.test`` on the test set.

    If ``artifacts`` is given it is filled with what figures need beyond the table: the
    pooled calibration curve of probabilistic predictions per k (``calibration``) and
    the fields of test sample `SNAPSHOT_SAMPLE` (``snapshot``: input, and per k the
    target, mean and variance)."""
    rows: list[dict[str, Any]] = []
    metrics = [m for m in metrics if m.unmet_by_task(spec) is None]
    artifacts = {} if artifacts is None else artifacts
    snap = artifacts.setdefault("snapshot", {"input": test.inputs[SNAPSHOT_SAMPLE]})
    calib = artifacts.setdefault("calibration", {})
    reasons = {k: method.k_not_supported(k, factors.train) for k in factors.test}
    ctx.check_deadline("predict")
    # One call for every supported k: methods share their work across factors.
    preds = method.predict_many(test.inputs, [k for k in factors.test if not reasons[k]])
    for k in factors.test:
        unseen = factors.unseen(k)
        if reasons[k]:
            rows += _na_rows([m.name for m in metrics], k, unseen, reasons[k])
            continue
        pred = preds[k]
        target = test.targets[k]
        if pred.mean.shape != target.shape:
            raise ValueError(f"{method.name} predicted shape {pred.mean.shape} at k={k}, expected {target.shape}")
        if not np.isfinite(pred.mean).all() or (pred.var is not None and not np.isfinite(pred.var).all()):
            raise Diverged(f"{method.name} predicted non-finite values at k={k}")
        snap[f"target_k{k}"], snap[f"mean_k{k}"] = target[SNAPSHOT_SAMPLE], pred.mean[SNAPSHOT_SAMPLE]
        if pred.var is not None and method.probabilistic:
            snap[f"var_k{k}"] = pred.var[SNAPSHOT_SAMPLE]
            calib[str(k)] = core.calibration_curve(pred.mean, pred.var, target).tolist()
        for metric in metrics:
            why = metric.unmet(spec, pred, method.probabilistic)
            if why:
                rows.append(measurement(metric.name, np.nan, k=k, unseen=unseen, status="n/a", reason=why))
                continue
            assert metric.fn is not None
            vals = metric.fn(pred, target, test.inputs, k, spec)
            rows.append(_pooled_row(metric.name, metric.pooled(vals), len(vals), k, unseen) if metric.pooled
                        else _stat_row(metric.name, vals, k, unseen))
    return rows


def evaluate_rollouts(method: Method, spec: TaskSpec, test: Dataset, factors: Factors, ctx: Context,
                      max_samples: int | None = None) -> list[dict[str, Any]]:
    """Coarse rollouts of time-dependent tasks: from ``R_k`` of a state, apply the
    method's coarse-to-coarse map repeatedly and score ``rollout_rel_l2@n`` at every
    horizon ``n`` in ``spec.rollout_horizons``, plus ``decorrelation_time``: the first
    horizon at which the relative error exceeds 1 (censored at the last horizon + 1);
    ``rollout_corr@n``, the correlation ``<p, y> / (|p| |y|)`` of the state with the
    filtered truth (uncentred, over every channel and cell: for vorticity, Kochkov et
    al.'s), and ``corr_time_095``: the number of horizons before it first drops below
    0.95 (censored at the rollout's length).
    ``max_samples`` scores the first that many trajectories only (None: all)."""
    if ROLLOUT.unmet(spec) or not spec.rollout_horizons:
        return []
    names = ([f"{ROLLOUT.name}@{n}" for n in spec.rollout_horizons] + [DECORRELATION.name]
             + [f"{CORRELATION.name}@{n}" for n in spec.rollout_horizons] + [CORR_TIME.name])
    rows: list[dict[str, Any]] = []
    for k in factors.test:
        unseen = factors.unseen(k)
        traj = test.rollouts.get(k)
        if traj is not None and max_samples is not None:
            traj = traj[:max_samples]
        reason = None if traj is not None else "dataset has no filtered trajectories"
        reason = reason or method.k_not_supported(k, factors.train)
        steps = max(spec.rollout_horizons)
        if reason is None:
            try:
                state, errors, corrs = traj[:, 0], [], []
                for _ in range(steps):
                    ctx.check_deadline(f"rollout k={k}")
                    state = method.advance(state, k).mean
                    if not np.isfinite(state).all():
                        raise Diverged(f"{method.name} rollout became non-finite at k={k}")
                    errors.append(core.rel_l2(state, traj[:, len(errors) + 1]))
                    corrs.append(core.correlation(state, traj[:, len(corrs) + 1]))
            except NotApplicable as e:
                reason = str(e)
        if reason:
            rows += _na_rows(names, k, unseen, reason)
            continue
        err = np.stack(errors, axis=1)  # (N, steps)
        for n in spec.rollout_horizons:
            rows.append(_stat_row(f"{ROLLOUT.name}@{n}", err[:, n - 1], k, unseen))
        above = err > 1.0
        decor = np.where(above.any(axis=1), above.argmax(axis=1) + 1, steps + 1).astype(float)
        rows.append(_stat_row(DECORRELATION.name, decor, k, unseen))
        corr = np.stack(corrs, axis=1)  # (N, steps)
        for n in spec.rollout_horizons:
            rows.append(_stat_row(f"{CORRELATION.name}@{n}", corr[:, n - 1], k, unseen))
        below = ~(corr >= CORR_LEVEL)  # NaN (a zero field) counts as decorrelated
        held = np.where(below.any(axis=1), below.argmax(axis=1), steps).astype(float)
        rows.append(_stat_row(CORR_TIME.name, held, k, unseen))
    return rows
