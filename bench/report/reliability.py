"""Calibration reliability diagrams, per coarse-graining factor k: observed frequency of
``y <= F^-1(p)`` against the quantile level p. The diagonal is perfect calibration; a
curve flatter than it means intervals too narrow (over-confident), steeper too wide,
shifted up or down a biased mean.

Drawn per k, not at one k: a method's calibration is learned (or, for the ``conformal``
wrappers, fitted on held-out data) at the training factors, and need not transfer to a
factor it never saw, so one curve per method at the smallest k would hide exactly the
failure the unseen factors test. The figure is a grid of panels, one row per task that
has a probabilistic method and one column per k with a curve (a task that recorded no
curve at a column's k leaves that slot empty, or notes it when the task did record
that k); unseen factors are marked in the panel titles. Each panel has one curve per
probabilistic method, calibration wrappers included: the mean over seeds of the pooled
per-seed curves the runner recorded (`CellArtifacts.observed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.report.aggregate import Summary
from bench.report.artifacts import Artifacts, CellArtifacts
from bench.report.figures import PANEL_W, Style, legend_handles, shared_legend, wrap_items

PANEL_IN = PANEL_W * 0.9  # square panels: the diagonal at 45 degrees
MARKER_STAGGER = 3  # with several curves, each marks every 3rd level, offset per method


@dataclass(frozen=True)
class Curve:
    method: str
    k: int
    levels: np.ndarray
    observed: np.ndarray  # mean over seeds
    n_seeds: int


@dataclass(frozen=True)
class Panel:
    """One (task, k) reliability diagram."""

    task: str
    k: int
    unseen: bool
    curves: list[Curve]
    #: probabilistic methods with a curve at another k of this task but none at this k
    missing: list[str]

    @property
    def title(self) -> str:
        notes = wrap_items("no curve:", self.missing) if self.missing else []
        return "\n".join([panel_head(self.task, self.k, self.unseen), *notes])


def panel_head(task: str, k: int, unseen: bool) -> str:
    """``darcy, k = 16 (unseen)``: the first line of a panel's title."""
    return f"{task}, k = {k}" + (" (unseen)" if unseen else "")


def _cells(artifacts: Artifacts, task: str) -> list[CellArtifacts]:
    return [c for c in artifacts if c.task == task and c.probabilistic and c.observed and c.levels is not None]


def reliability_ks(artifacts: Artifacts, task: str) -> list[int]:
    """Factors at which some probabilistic method of ``task`` recorded a curve."""
    return sorted({k for c in _cells(artifacts, task) for k in c.observed})


def reliability_curves(summary: Summary, artifacts: Artifacts, task: str, k: int | None = None) -> list[Curve]:
    """Curves of ``task``'s probabilistic methods at factor ``k`` (default: the smallest
    k with any curve), in the run's method order; a method without a curve at ``k`` is
    left out."""
    cells = _cells(artifacts, task)
    if not cells:
        return []
    if k is None:
        k = min(kk for c in cells for kk in c.observed)
    out = []
    for method in summary.methods:
        mine = [c for c in cells if c.method == method and k in c.observed]
        if not mine:
            continue
        levels = mine[0].levels
        mine = [c for c in mine if c.levels is not None and np.allclose(c.levels, levels)]
        obs = np.mean([c.observed[k] for c in mine], axis=0)
        out.append(Curve(method, k, np.asarray(levels), obs, len(mine)))
    return out


def reliability_panels(summary: Summary, artifacts: Artifacts) -> list[Panel]:
    """Every (task, k) with a curve: tasks in run order, k ascending."""
    panels = []
    for task in summary.tasks:
        cells = _cells(artifacts, task)
        methods = [m for m in summary.methods if any(c.method == m for c in cells)]
        for k in reliability_ks(artifacts, task):
            curves = reliability_curves(summary, artifacts, task, k)
            drawn = {c.method for c in curves}
            panels.append(Panel(task, k, summary.is_unseen(task, k), curves, [m for m in methods if m not in drawn]))
    return panels


def _recorded_ks(summary: Summary, task: str) -> set[int]:
    """Factors at which ``task`` recorded any measurement."""
    return {k for metric in summary.metrics(task) for k in summary.ks(task, metric)}


def plot_reliability(summary: Summary, artifacts: Artifacts, styles: dict[str, Style]) -> Figure | str:
    """The grid (rows: tasks, columns: k), or the reason there is none (no probabilistic
    method in the run)."""
    panels = reliability_panels(summary, artifacts)
    if not panels:
        return "no probabilistic method recorded a calibration curve in this run"
    tasks = list(dict.fromkeys(p.task for p in panels))
    ks = sorted({p.k for p in panels})
    at = {(p.task, p.k): p for p in panels}
    fig = Figure(figsize=(PANEL_IN * len(ks), PANEL_IN * len(tasks) + 0.6), layout="constrained")
    grid = fig.subplots(len(tasks), len(ks), squeeze=False)
    drawn: list[str] = []
    for i, task in enumerate(tasks):
        recorded = _recorded_ks(summary, task)
        for j, k in enumerate(ks):
            ax = grid[i, j]
            panel = at.get((task, k))
            if panel is None:
                if k not in recorded:  # the task was not evaluated at this k: leave the slot empty
                    fig.delaxes(ax)
                    continue
                ax.text(0.5, 0.5, "no calibration curve\nrecorded at this k", ha="center", va="center",
                        transform=ax.transAxes)
                ax.set_title(panel_head(task, k, summary.is_unseen(task, k)))
                ax.set_axis_off()
                continue
            ax.plot([0, 1], [0, 1], ls="--", lw=0.9, color="0.5", zorder=1)
            # markers staggered over the levels: curves that coincide (a wrapper and its base
            # both on the diagonal) still show every method's marker
            step = min(len(panel.curves), MARKER_STAGGER)
            for n, c in enumerate(panel.curves):
                st = styles[c.method]
                ax.plot(c.levels, c.observed, color=st.color, marker=st.marker, ms=3, lw=1.2, zorder=3,
                        markevery=(n % step, step), label=c.method)
                drawn.append(c.method)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.grid(True, alpha=0.3, lw=0.5)
            ax.set_title(panel.title)
            ax.set_xlabel("quantile level $p$")
            if j == 0 or all((task, kk) not in at for kk in ks[:j]):
                ax.set_ylabel(r"observed freq. of $y \leq F^{-1}(p)$")
    handles = legend_handles(styles, [m for m in summary.methods if m in drawn])
    handles.append(Line2D([], [], ls="--", lw=0.9, color="0.5", label="perfect calibration"))
    shared_legend(fig, handles)
    return fig
