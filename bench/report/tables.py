"""Format-neutral leaderboard model: which columns a task shows, one row per method,
the best value per column (direction-aware), and the notes (failures, n/a reasons).

Renderers (`markdown`, `latex`) only decide markup; every choice about content is here,
so a later table (ablation, unseen-k, ranks) is a different `columns`/`methods` choice
fed to the same renderers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.catalog import metric_info
from bench.metrics import CONVERGENCE_TOL, FLUCTUATION, PRIMARY
from bench.report.aggregate import NA, OK, Entry, Summary, split_states
from bench.report.fmt import short_reason
from nskernel.metric import GROUPS, lower_is_better

_REL_TOL = 1e-12
LATE_GAIN = "late_val_gain"


@dataclass(frozen=True)
class Column:
    """One table column: ``metric`` at factor ``k`` (None for cell-level costs).
    ``per_k``: one of a metric's per-factor columns (they share a group header)."""

    metric: str
    k: int | None
    unseen: bool = False
    per_k: bool = False

    @property
    def direction(self) -> str:
        return metric_info(self.metric).direction

    @property
    def group(self) -> str:
        return metric_info(self.metric).group

    @property
    def name(self) -> str:
        return self.metric if self.k is None else f"{self.metric} (k={self.k})"


@dataclass(frozen=True)
class Row:
    method: str
    status: str  # "ok" when at least one seed finished
    entries: tuple[Entry, ...]
    best: tuple[bool, ...]
    #: "not converged" where a seed's validation error still fell by more than
    #: `CONVERGENCE_TOL` over the last fifth of its training, else ""
    flag: str = ""

    @property
    def label(self) -> str:
        """The method's name as tables print it, with its flag."""
        return f"{self.method} ({self.flag})" if self.flag else self.method


@dataclass(frozen=True)
class Failure:
    """Seeds of one method that did not finish, with one shared reason."""

    method: str
    status: str
    seeds: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class NaNote:
    """Why some measurements are ``n/a``: one reason, the columns and methods it hits."""

    reason: str
    columns: tuple[str, ...]
    methods: tuple[str, ...]


@dataclass(frozen=True)
class Leaderboard:
    task: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    n_seeds: int
    failures: tuple[Failure, ...] = ()
    na_notes: tuple[NaNote, ...] = ()
    omitted: tuple[str, ...] = field(default=())  # recorded metrics with no value at all


def best_mask(values: Sequence[float], direction: str) -> list[bool]:
    """Which values are best under ``direction`` ('lower', 'higher', 'target:x').

    Ties are all best; fewer than two finite values means nothing to compare (no bold).
    """
    score = [lower_is_better(v, direction) for v in values]
    finite = [s for s in score if math.isfinite(s)]
    if len(finite) < 2:
        return [False] * len(score)
    top = min(finite)
    tol = _REL_TOL * max(1.0, abs(top))
    return [math.isfinite(s) and s <= top + tol for s in score]


def headline_metric(summary: Summary, task: str) -> str:
    """The accuracy metric a task's leaderboard leads with: the fluctuation error where a
    time-dependent task records it, else the primary ``rel_l2``."""
    return FLUCTUATION if summary.has_finite(task, FLUCTUATION) else PRIMARY


def default_columns(summary: Summary, task: str) -> tuple[list[Column], list[str]]:
    """Leaderboard columns by metric group (`nskernel.metric.GROUPS`): accuracy metrics
    at every k, then physics, uncertainty, task, rollout and cost metrics at their
    smallest k; metrics declared ``leaderboard=False`` are left out (they stay in
    aggregate.csv). A metric is shown when some method has a finite value; the others
    are returned as ``omitted``. The primary accuracy metric is always shown; the
    fluctuation error, where a time-dependent task records it, leads the columns."""
    recorded = list(dict.fromkeys([PRIMARY, *summary.metrics(task)]))
    position = {m: i for i, m in enumerate(recorded)}
    lead = list(dict.fromkeys([headline_metric(summary, task), PRIMARY]))
    shown = sorted((m for m in recorded if metric_info(m).leaderboard),
                   key=lambda m: (GROUPS.index(metric_info(m).group), lead.index(m) if m in lead else len(lead),
                                  position[m]))
    cols, omitted = [], []
    for metric in shown:
        if metric_info(metric).group == "accuracy":
            if metric == PRIMARY or summary.has_finite(task, metric):
                ks = summary.ks(task, metric) or summary.run.k_test
                cols += [Column(metric, k, summary.is_unseen(task, k), per_k=True) for k in ks]
            else:
                omitted.append(metric)
        elif summary.has_finite(task, metric):
            k = summary.smallest_k(task, metric)
            cols.append(Column(metric, k, summary.is_unseen(task, k)))
        else:
            omitted.append(metric)
    return cols, omitted


def convergence_flag(summary: Summary, task: str, method: str) -> str:
    """"not converged" when any seed's validation error still fell by more than
    `CONVERGENCE_TOL` over the last fifth of its training (the ``late_val_gain`` row)."""
    e = summary.entry(task, method, LATE_GAIN, None)
    return "not converged" if e.ok and any(v > CONVERGENCE_TOL for v in e.values) else ""


def _failures(summary: Summary, task: str, methods: Sequence[str]) -> list[Failure]:
    out = []
    for method in methods:
        groups: dict[tuple[str, str], list[int]] = {}
        for cell in summary.cells(task, method):
            if cell.status != OK:
                groups.setdefault((cell.status, short_reason(cell.reason)), []).append(cell.seed)
        out += [Failure(method, st, tuple(seeds), why) for (st, why), seeds in groups.items()]
    return out


def _na_notes(
    summary: Summary, task: str, methods: Sequence[str], columns: Sequence[Column], omitted: Sequence[str]
) -> list[NaNote]:
    """Group the n/a reasons of finished cells by reason text."""
    targets = [(c.name, c.metric, [c.k]) for c in columns]
    targets += [(m, m, summary.ks(task, m) or [None]) for m in omitted]
    by_reason: dict[str, tuple[dict[str, None], dict[str, None]]] = {}
    for label, metric, ks in targets:
        for method in methods:
            if summary.row_status(task, method) != OK:
                continue  # a cell that did not finish is explained by the failure notes
            for k in ks:
                e = summary.entry(task, method, metric, k)
                if NA not in split_states(e.state) and NA not in dict(e.issues):
                    continue
                for why in summary.reasons(task, method, metric, k) or ["no reason recorded"]:
                    cols, meths = by_reason.setdefault(short_reason(why), ({}, {}))
                    cols[label] = None
                    meths[method] = None
    return [NaNote(why, tuple(c), tuple(m)) for why, (c, m) in by_reason.items()]


def build_leaderboard(
    summary: Summary,
    task: str,
    columns: Sequence[Column] | None = None,
    methods: Sequence[str] | None = None,
) -> Leaderboard:
    """One task's table. Every method of the run gets a row, whatever its status."""
    omitted: list[str] = []
    if columns is None:
        columns, omitted = default_columns(summary, task)
    methods = list(methods) if methods is not None else summary.methods
    grid = [[summary.entry(task, m, c.metric, c.k) for c in columns] for m in methods]
    statuses = [summary.row_status(task, m) for m in methods]
    best_cols = [
        best_mask([row[j].mean if row[j].ok else math.nan for row in grid], col.direction)
        for j, col in enumerate(columns)
    ]
    rows = tuple(
        Row(m, st, tuple(grid[i]), tuple(best_cols[j][i] for j in range(len(columns))),
            convergence_flag(summary, task, m))
        for i, (m, st) in enumerate(zip(methods, statuses))
    )
    return Leaderboard(
        task=task,
        columns=tuple(columns),
        rows=rows,
        n_seeds=len(summary.run.seeds),
        failures=tuple(_failures(summary, task, methods)),
        na_notes=tuple(_na_notes(summary, task, methods, columns, omitted)),
        omitted=tuple(omitted),
    )


def build_leaderboards(summary: Summary) -> list[Leaderboard]:
    return [build_leaderboard(summary, task) for task in summary.tasks]
