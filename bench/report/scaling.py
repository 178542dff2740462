"""Data-scaling curves of a ``--n-train`` run (`bench.scaling`): per task, the headline
accuracy metric (the one its leaderboard leads with, `tables.headline_metric`) against
the number of training samples N, with a least-squares power law per method and k.

The fit is ``log error = log c + slope * log N`` over the seed means at the sizes where
the method has a (positive, finite) value: ``error ~ c * N**slope``, so the slope is the
exponent (negative: more data, less error). Methods that learn nothing from data are run
once (they record ``data_s = 0``): one value, drawn as a horizontal line. A method of the
run without a training-set size that does learn from data (a cell left from a run
without ``--n-train`` in the same directory, or a failed one) has no N and is listed as
not drawn.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from bench.report.aggregate import Entry, Summary
from bench.report.figures import Style, log_error_bars, log_ticks, method_styles, panel_figure
from bench.report.fmt import CellText, cell_text, describe_budget
from bench.report.grid import GCell, GColumn, Grid, GRow, Section, slug, status_cell
from bench.report.tables import headline_metric

DATA_FREE = "no training data"
TITLE = "Data scaling"
INTRO = ("Error against the number of training samples N (the first N samples of each task's training split; "
         "the test and validation splits are the same at every N): mean ± std over seeds of the task's headline "
         "accuracy metric. slope: least-squares fit of log error against log N over the seed means (error ~ "
         "c N^slope; more negative: learns more from more data). Methods that learn nothing from data are run "
         f"once ({DATA_FREE}): their one value stands in every column (horizontal lines in the figures).")
CAPTION = ("Error against training samples N (log-log), one panel per k: mean over seeds, bars: seed std; the "
           "legend gives each method's fitted exponent (slope of log error against log N). Dashed horizontal "
           "lines: methods that learn nothing from data.")


@dataclass(frozen=True)
class Fit:
    """``error ~ prefactor * N**slope`` from ``n_points`` sizes (NaN: fewer than two)."""

    slope: float
    prefactor: float
    n_points: int


@dataclass(frozen=True)
class Curve:
    """One method at one k: its seed aggregate at every training-set size."""

    method: str
    k: int
    sizes: tuple[int, ...]
    entries: tuple[Entry, ...]
    fit: Fit


@dataclass(frozen=True)
class TaskScaling:
    """A task's curves (``curves``), data-free references (``flat``: (method, k, entry)),
    and the methods without a training-set size that learn from data (``not_drawn``)."""

    task: str
    metric: str
    ks: tuple[int, ...]
    unseen: tuple[bool, ...]
    sizes: tuple[int, ...]
    curves: tuple[Curve, ...]
    flat: tuple[tuple[str, int, Entry], ...]
    not_drawn: tuple[str, ...] = ()


def fit_power_law(sizes: Sequence[float], errors: Sequence[float]) -> Fit:
    """Least-squares line through (log N, log error) over the points with a positive,
    finite N and error; NaN slope and prefactor with fewer than two distinct N."""
    n, e = np.asarray(sizes, dtype=float), np.asarray(errors, dtype=float)
    ok = np.isfinite(n) & np.isfinite(e) & (n > 0) & (e > 0)
    if len(np.unique(n[ok])) < 2:
        return Fit(math.nan, math.nan, int(ok.sum()))
    slope, intercept = np.polyfit(np.log(n[ok]), np.log(e[ok]), 1)
    return Fit(float(slope), float(np.exp(intercept)), int(ok.sum()))


def _curve(summary: Summary, task: str, method: str, labels: Sequence[tuple[str, int]], metric: str,
           k: int) -> Curve:
    entries = tuple(summary.entry(task, label, metric, k) for label, _ in labels)
    sizes = tuple(n for _, n in labels)
    usable = [(n, e.mean) for n, e in zip(sizes, entries) if e.ok]
    fit = fit_power_law(*zip(*usable)) if usable else Fit(math.nan, math.nan, 0)
    return Curve(method, k, sizes, entries, fit)


def _is_data_free(summary: Summary, task: str, method: str) -> bool:
    """The cell charged no data-generation cost: a method that does not learn from data."""
    e = summary.entry(task, method, "data_s", None)
    return e.ok and all(v == 0 for v in e.values)


def scaling_tasks(summary: Summary) -> list[TaskScaling]:
    """Every task with at least two training-set sizes; [] for a run without ``--n-train``."""
    scaled = summary.run.scaled
    out = []
    for task in summary.tasks:
        present = [m for m in summary.methods if any(c.status != "missing" for c in summary.cells(task, m))]
        labels = [m for m in present if m in scaled]
        sizes = tuple(sorted({scaled[m][1] for m in labels}))
        if len(sizes) < 2:
            continue
        metric = headline_metric(summary, task)
        ks = tuple(summary.ks(task, metric))
        bases = list(dict.fromkeys(scaled[m][0] for m in labels))
        curves = [_curve(summary, task, base, sorted(((m, scaled[m][1]) for m in labels if scaled[m][0] == base),
                                                     key=lambda x: x[1]), metric, k)
                  for base in bases for k in ks]
        plain = [m for m in present if m not in scaled]
        free = [m for m in plain if _is_data_free(summary, task, m)]
        flat = [(m, k, summary.entry(task, m, metric, k)) for m in free for k in ks]
        not_drawn = [f"{m} ({summary.row_status(task, m)})" for m in plain if m not in free]
        out.append(TaskScaling(task, metric, ks, tuple(summary.is_unseen(task, k) for k in ks), sizes,
                               tuple(curves), tuple(flat), tuple(not_drawn)))
    return out


def _slope_text(fit: Fit) -> str:
    return "n/a" if math.isnan(fit.slope) else f"{fit.slope:+.3f}"


def _value(e: Entry, metric: str) -> GCell:
    """Mean ± seed std (or the state), without the bootstrap interval of the leaderboards."""
    return GCell(dataclasses.replace(cell_text(e, metric), ci=None))


def scaling_grids(data: Sequence[TaskScaling]) -> list[Grid]:
    """One table per task and k: a row per method, a column per training-set size and
    the fitted slope."""
    grids = []
    for ts in data:
        for k, unseen in zip(ts.ks, ts.unseen):
            cols = (*(GColumn(ts.metric, f"N={n}", "lower") for n in ts.sizes), GColumn("slope"))
            rows = []
            for c in (c for c in ts.curves if c.k == k):
                by_n = dict(zip(c.sizes, c.entries))
                cells = [_value(by_n[n], ts.metric) if n in by_n else status_cell("-") for n in ts.sizes]
                fit = f" ({c.fit.n_points} of {len(c.sizes)} sizes)" if 1 < c.fit.n_points < len(c.sizes) else ""
                rows.append(GRow(c.method, (*cells, GCell(CellText("value", _slope_text(c.fit) + fit)))))
            for method, kk, e in ts.flat:
                if kk == k:
                    same = _value(e, ts.metric)
                    rows.append(GRow(f"{method} ({DATA_FREE})", (*(same for _ in ts.sizes), status_cell("-"))))
            notes = (f"Not drawn (no training-set size recorded): {', '.join(ts.not_drawn)}.",) if ts.not_drawn else ()
            title = f"{ts.task}, k={k}" + (" (unseen)" if unseen else "")
            grids.append(Grid(f"scaling-{slug(ts.task)}-k{k}", title, f"{ts.metric} against training samples for "
                              f"task {ts.task} at k={k}.", cols, tuple(rows), notes))
    return grids


def scaling_section(data: Sequence[TaskScaling], budgets: object = None) -> Section:
    """The tables as a report section (leaderboard.md, index.html, scaling.md)."""
    intro = INTRO
    if isinstance(budgets, dict) and budgets:
        per = "; ".join(f"{task}: {describe_budget(b)}" for task, b in budgets.items())
        intro += (f" Training budget: {per}. With an epoch budget a smaller training set gets proportionally "
                  "fewer optimisation steps; --flops gives every N the same compute.")
    return Section("scaling", TITLE, intro, scaling_grids(data), "No task has two training-set sizes.")


def _panel(ax: Axes, ts: TaskScaling, k: int, styles: dict[str, Style]) -> None:
    for c in (c for c in ts.curves if c.k == k):
        pts = [(n, e.mean, e.std) for n, e in zip(c.sizes, c.entries) if e.ok and e.mean > 0]
        if not pts:
            continue
        x, y, s = (np.asarray(v, dtype=float) for v in zip(*pts))
        st = styles[c.method]
        ax.errorbar(x, y, yerr=log_error_bars(y, s), color=st.color, marker=st.marker, ms=4, lw=1.3,
                    capsize=2, label=f"{c.method}: slope {_slope_text(c.fit)}")
    for method, kk, e in ts.flat:
        if kk == k and e.ok and e.mean > 0:
            ax.axhline(e.mean, color=styles[method].color, ls="--", lw=1.1,
                       label=f"{method} ({DATA_FREE})")


def plot_scaling(ts: TaskScaling) -> Figure | str:
    """One task's figure: a panel per k, error against N (log-log)."""
    if not any(e.ok for c in ts.curves for e in c.entries):
        return f"no finished result at any training-set size of task {ts.task}"
    methods = list(dict.fromkeys([*(c.method for c in ts.curves), *(m for m, _, _ in ts.flat)]))
    styles = method_styles(methods)
    fig, axes = panel_figure(max(1, len(ts.ks)))
    for ax, k, unseen in zip(axes, ts.ks, ts.unseen):
        _panel(ax, ts, k, styles)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlim(ts.sizes[0] / 1.4, ts.sizes[-1] * 1.4)
        ax.set_xticks(ts.sizes, [str(n) for n in ts.sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        log_ticks(ax, "y")
        ax.grid(True, which="major", alpha=0.3, lw=0.5)
        ax.set_title(f"{ts.task}, k={k}" + (" (unseen)" if unseen else ""))
        ax.set_xlabel("training samples $N$")
        handles, labels = ax.get_legend_handles_labels()
        if handles:  # the curves first, then the data-free references
            order = sorted(range(len(labels)), key=lambda i: DATA_FREE in labels[i])
            ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper center",
                      bbox_to_anchor=(0.5, -0.22), frameon=False, fontsize=7)
    axes[0].set_ylabel(ts.metric)
    return fig


def figure_stem(task: str) -> str:
    return f"scaling_{slug(task)}"
