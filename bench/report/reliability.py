"""Calibration reliability diagrams: observed frequency of ``y <= F^-1(p)`` against the
quantile level p. The diagonal is perfect calibration; a curve flatter than it means
intervals too narrow (over-confident), steeper too wide, shifted up or down a biased mean.

One panel per task that has a probabilistic method; one curve per probabilistic method
at the task's smallest factor k with a curve, the mean over seeds of the pooled
per-seed curves the runner recorded (`CellArtifacts.observed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.report.aggregate import Summary
from bench.report.artifacts import Artifacts
from bench.report.figures import PANEL_W, Style, legend_handles, shared_legend


@dataclass(frozen=True)
class Curve:
    method: str
    k: int
    levels: np.ndarray
    observed: np.ndarray  # mean over seeds
    n_seeds: int


def reliability_curves(summary: Summary, artifacts: Artifacts, task: str) -> list[Curve]:
    """Curves of ``task``'s probabilistic methods at its smallest k with any curve."""
    cells = [c for c in artifacts if c.task == task and c.probabilistic and c.observed and c.levels is not None]
    if not cells:
        return []
    k = min(k for c in cells for k in c.observed)
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


def plot_reliability(summary: Summary, artifacts: Artifacts, styles: dict[str, Style]) -> Figure | str:
    """The figure, or the reason there is none (no probabilistic method in the run)."""
    per_task = [(t, reliability_curves(summary, artifacts, t)) for t in summary.tasks]
    per_task = [(t, cs) for t, cs in per_task if cs]
    if not per_task:
        return "no probabilistic method recorded a calibration curve in this run"
    n = len(per_task)
    fig = Figure(figsize=(PANEL_W * 0.9 * n, PANEL_W * 0.9 + 0.6), layout="constrained")
    axes = list(fig.subplots(1, n, squeeze=False)[0])
    drawn: list[str] = []
    for ax, (task, curves) in zip(axes, per_task):
        ax.plot([0, 1], [0, 1], ls="--", lw=0.9, color="0.5", zorder=1)
        for c in curves:
            st = styles[c.method]
            ax.plot(c.levels, c.observed, color=st.color, marker=st.marker, ms=3, lw=1.2, zorder=3)
            drawn.append(c.method)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.grid(True, alpha=0.3, lw=0.5)
        ax.set_title(f"{task} ($k={curves[0].k}$)")
        ax.set_xlabel("quantile level $p$")
    axes[0].set_ylabel(r"observed freq. of $y \leq F^{-1}(p)$")
    handles = legend_handles(styles, [m for m in summary.methods if m in drawn])
    handles.append(Line2D([], [], ls="--", lw=0.9, color="0.5", label="perfect calibration"))
    shared_legend(fig, handles)
    return fig
