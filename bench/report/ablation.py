"""NeuroScale ablation tables (one per task) and the unseen-k generalisation table.

Ablation: the methods named ``neuroscale`` (the full model) and ``neuroscale:<params>``
(variants with one component changed); rows = variants with the full model first,
columns = the headline metrics (rel_l2 at every k, the task's physics law, nll, ece, speedup at their smallest k),
each cell ``mean ± std [CI]`` and, for a variant, ``(Δ difference, relative change)``
to the full model's mean.

Generalisation: per task and unseen factor k_u, the ratio rel_l2(k_u) / rel_l2(k_s) with
k_s the largest factor used in training (the ``unseen`` column of results.csv). The ratio
is taken per seed and then averaged (mean ± std over the seeds that have both values).
"""

from __future__ import annotations

import math

import numpy as np

from bench.catalog import metric_info
from bench.metrics import PRIMARY
from bench.report.aggregate import OK, Entry, Summary
from bench.report.fmt import CellText, cell_text, fmt_mean_std, fmt_number
from bench.report.grid import GCell, GColumn, Grid, GRow, board_columns, board_notes, slug, status_cell
from bench.report.tables import Column, best_mask, build_leaderboard, default_columns

FULL = "neuroscale"


def is_neuroscale(method: str) -> bool:
    return method == FULL or method.startswith(FULL + ":")


def delta_text(value: float, full: float, metric: str) -> tuple[str, ...]:
    """(signed difference, signed relative change) of ``value`` vs the full model."""
    d = value - full
    diff = ("+" if d > 0 else "") + fmt_number(d, metric)
    if full > 0 and metric_info(metric).ratio_scale:  # not for a log-likelihood
        return diff, f"{100.0 * d / full:+.0f}%"
    return (diff,)


def ablation_columns(summary: Summary, task: str) -> list[Column]:
    """The leaderboard's columns of headline metrics (`nskernel.Metric.headline`)."""
    return [c for c in default_columns(summary, task)[0] if metric_info(c.metric).headline]


def ablation_grid(summary: Summary, task: str) -> Grid | None:
    """The task's ablation table, or None when the run has no NeuroScale variant."""
    variants = [m for m in summary.methods if is_neuroscale(m)]
    variants = sorted(variants, key=lambda m: m != FULL)  # full model first, then run order
    if not any(m != FULL for m in variants):
        return None
    cols = ablation_columns(summary, task)
    board = build_leaderboard(summary, task, columns=cols, methods=variants)
    full = next((r for r in board.rows if r.method == FULL and r.status == OK), None)
    rows = []
    for row in board.rows:
        if row.status != OK:
            rows.append(GRow(row.method, tuple(status_cell(row.status) for _ in cols)))
            continue
        cells = []
        for j, (e, c) in enumerate(zip(row.entries, cols)):
            ref = full.entries[j] if full is not None and row is not full else None
            extra = delta_text(e.mean, ref.mean, c.metric) if ref is not None and ref.ok and e.ok else ()
            fmt = ("(Δ " + ", ".join("{}" for _ in extra) + ")") if extra else ""
            cells.append(GCell(cell_text(e, c.metric), row.best[j], extra, fmt))
        rows.append(GRow(row.method, tuple(cells)))
    notes = board_notes(board)
    if full is None:
        notes.insert(0, f"No finished '{FULL}' (full model) in this run: differences are not shown.")
    caption = (f"NeuroScale ablation on task {task}: mean ± std over seeds; Δ: difference to the full "
               f"'{FULL}' model (and relative change); best per column in bold.")
    return Grid(f"ablation-{slug(task)}", f"Ablation: {task}", caption, board_columns(board), tuple(rows),
                tuple(notes))


# ---- unseen-k generalisation ----------------------------------------------------------
def unseen_pairs(summary: Summary, task: str) -> list[tuple[int, int]]:
    """(unseen k, largest seen k) pairs of ``task`` (empty when nothing is unseen)."""
    ks = summary.ks(task, PRIMARY)
    seen = [k for k in ks if not summary.is_unseen(task, k)]
    return [(k, max(seen)) for k in ks if summary.is_unseen(task, k)] if seen else []


def seed_ratios(unseen: Entry, seen: Entry) -> list[float]:
    """Per-seed ratios over the seeds that have both values (and a non-zero divisor)."""
    ref = dict(zip(seen.seeds, seen.values))
    return [v / ref[s] for s, v in zip(unseen.seeds, unseen.values) if s in ref and ref[s] != 0]


def _ratio_cell(summary: Summary, task: str, method: str, ku: int, ks: int) -> tuple[GCell, float]:
    status = summary.row_status(task, method)
    if status != OK:
        return status_cell(status), math.nan
    eu, es = summary.entry(task, method, PRIMARY, ku), summary.entry(task, method, PRIMARY, ks)
    for e in (eu, es):
        if not e.ok:
            return GCell(cell_text(e, PRIMARY)), math.nan
    ratios = seed_ratios(eu, es)
    if not ratios:
        return status_cell("no common seed"), math.nan
    arr = np.asarray(ratios)
    mean, std = fmt_mean_std(float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan)
    n_seeds = len(summary.cells(task, method))
    note = f"{len(arr)}/{n_seeds} seeds" if len(arr) < n_seeds else ""
    return GCell(CellText("value", mean, std, note)), float(arr.mean())


def unseen_grid(summary: Summary) -> Grid | None:
    """Rows = methods, columns = (task, unseen k); None when no task has an unseen k."""
    pairs = [(t, ku, ks) for t in summary.tasks for ku, ks in unseen_pairs(summary, t)]
    if not pairs or not summary.methods:
        return None
    table = [[_ratio_cell(summary, t, m, ku, ks) for t, ku, ks in pairs] for m in summary.methods]
    best = [best_mask([row[j][1] for row in table], "lower") for j in range(len(pairs))]
    rows = tuple(
        GRow(m, tuple(GCell(c.ct, best[j][i], c.extra, c.extra_fmt) for j, (c, _) in enumerate(row)))
        for i, (m, row) in enumerate(zip(summary.methods, table))
    )
    cols = tuple(GColumn(t, f"k={ku} / k={ks}", "lower") for t, ku, ks in pairs)
    caption = ("Unseen-factor generalisation: rel_l2 at the unseen factor divided by rel_l2 at the largest "
               "factor seen in training, per seed, then mean ± std over seeds; lowest in bold. Above 1 the "
               "error grows at the unseen factor (compare the classical baselines, trained on no k).")
    return Grid("unseen-k", "Unseen-k generalisation", caption, cols, rows)
