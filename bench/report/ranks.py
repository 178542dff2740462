"""Cross-task summary: the average rank of every method.

Within a task, methods are ranked on each leaderboard column of the chosen metrics
(default: the headline metrics of the accuracy and physics groups, e.g. ``rel_l2`` at
every k and the task's headline law such as ``max_principle``), direction-aware (the
metric's ``direction``): 1 is best, ties share their average rank. A failed, diverged, timed-out or NaN entry ranks
after every value (tied for last): a method must not gain from breaking. An ``n/a`` or
not-run entry is left out of that column. A task's rank of a method is its mean rank
over the columns it took part in; ``overall`` is the mean over tasks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from bench.catalog import metric_info
from bench.report.aggregate import MISSING, NA, OK, Summary, split_states
from bench.report.fmt import CellText
from bench.report.grid import GCell, GColumn, Grid, GRow, status_cell
from bench.report.tables import best_mask, default_columns
from nskernel.metric import lower_is_better

RANK_GROUPS = ("accuracy", "physics")  # ranked: the headline metrics of these groups
_EXCLUDED = {NA, MISSING}  # does not apply / was not run: no rank at all


def ranked(metric: str) -> bool:
    info = metric_info(metric)
    return info.headline and info.group in RANK_GROUPS


def rank_values(values: Sequence[float | None], direction: str) -> list[float | None]:
    """Average ranks (1 = best). ``None``: left out (no rank); NaN: ranks last, tied
    with the other NaNs. Fewer than two participants: nobody is ranked."""
    taking_part = {i: v for i, v in enumerate(values) if v is not None}
    if len(taking_part) < 2:
        return [None] * len(values)
    finite = {i: v for i, v in taking_part.items() if math.isfinite(v)}
    broken = [i for i in taking_part if i not in finite]
    out: list[float | None] = [None] * len(values)
    if finite:
        ranks = rankdata([lower_is_better(v, direction) for v in finite.values()], method="average")
        for i, r in zip(finite, ranks):
            out[i] = float(r)
    last = len(finite) + (len(broken) + 1) / 2.0  # mean of the positions after the values
    for i in broken:
        out[i] = last
    return out


def _value_for_rank(summary: Summary, task: str, method: str, metric: str, k: int | None) -> float | None:
    if summary.row_status(task, method) != OK:
        states = split_states(summary.row_status(task, method))
        return None if set(states) <= _EXCLUDED else math.nan
    e = summary.entry(task, method, metric, k)
    if e.ok:
        return e.mean
    return None if set(split_states(e.state)) <= _EXCLUDED else math.nan


def task_ranks(summary: Summary, task: str, metrics: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Each method's ranks in every ranked column of ``task`` (empty list: none);
    ``metrics`` (None: the `ranked` ones) selects the columns."""
    cols = [c for c in default_columns(summary, task)[0] if (c.metric in metrics if metrics else ranked(c.metric))]
    out: dict[str, list[float]] = {m: [] for m in summary.methods}
    for col in cols:
        values = [_value_for_rank(summary, task, m, col.metric, col.k) for m in summary.methods]
        for m, r in zip(summary.methods, rank_values(values, col.direction)):
            if r is not None:
                out[m].append(r)
    return out


def average_ranks(summary: Summary, metrics: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """``{method: {task: mean rank, ..., "overall": mean over tasks}}`` (NaN: unranked)."""
    per_task = {t: task_ranks(summary, t, metrics) for t in summary.tasks}
    out: dict[str, dict[str, float]] = {}
    for m in summary.methods:
        row = {t: float(np.mean(r[m])) if r[m] else math.nan for t, r in per_task.items()}
        ranked = [v for v in row.values() if math.isfinite(v)]
        row["overall"] = float(np.mean(ranked)) if ranked else math.nan
        out[m] = row
    return out


def rank_grid(summary: Summary, metrics: Sequence[str] | None = None) -> Grid | None:
    """Rows = methods (best overall first), columns = tasks + overall."""
    if not summary.tasks or len(summary.methods) < 2:
        return None
    ranks = average_ranks(summary, metrics)
    keys = [*summary.tasks, "overall"]
    if not any(math.isfinite(ranks[m]["overall"]) for m in summary.methods):
        return None
    order = sorted(summary.methods, key=lambda m: (not math.isfinite(ranks[m]["overall"]), ranks[m]["overall"]
                                                  if math.isfinite(ranks[m]["overall"]) else 0.0))
    best = {key: best_mask([ranks[m][key] for m in order], "lower") for key in keys}
    rows = []
    for i, m in enumerate(order):
        cells = []
        for key in keys:
            v = ranks[m][key]
            if math.isfinite(v):
                cells.append(GCell(CellText("value", f"{v:.2f}"), best[key][i]))
            else:
                cells.append(status_cell(NA if key == "overall" else _unranked(summary, key, m)))
        rows.append(GRow(m, tuple(cells)))
    cols = tuple(GColumn(t, direction="lower") for t in summary.tasks) + (GColumn("overall", direction="lower"),)
    used = metrics or list(dict.fromkeys(c.metric for t in summary.tasks for c in default_columns(summary, t)[0]
                                         if ranked(c.metric)))
    caption = (
        f"Average rank per method (1 = best) over each task's leaderboard columns of {', '.join(used)} "
        "(accuracy metrics at every k, other metrics at their smallest k), direction-aware; ties share the average "
        "rank; failed, diverged, timed-out or NaN entries rank last; n/a and not-run entries are left out. "
        "overall: mean over the tasks where the method is ranked."
    )
    return Grid("ranks", "Cross-task summary (average rank)", caption, cols, tuple(rows))


def _unranked(summary: Summary, task: str, method: str) -> str:
    status = summary.row_status(task, method)
    return NA if status == OK else status
