"""The learning-curve figure: validation score (solid: relative L2, or the residual loss
of a label-free method) and training loss (dashed)
against optimisation steps, per task, for every method that trained on a validation
split (seed 0; each network of an ensemble drawn separately). A dot marks the epoch
whose weights were scored (the best on validation)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from bench.report.aggregate import Summary
from bench.report.artifacts import Artifacts
from bench.report.figures import Style, legend_handles, log_ticks, panel_figure, shared_legend, wrap_items


def plot_learning_curves(summary: Summary, artifacts: Artifacts, styles: dict[str, Style]) -> Figure | str:
    tasks = [t for t in summary.tasks if any(c.curves for c in artifacts if c.task == t)]
    if not tasks:
        return "no learning curve recorded (no neural method in this run, or records without curves)"
    fig, axes = panel_figure(len(tasks))
    drawn: list[str] = []
    for ax, task in zip(axes, tasks):
        no_val = []
        for method in summary.methods:
            cells = sorted((c for c in artifacts if c.task == task and c.method == method and c.curves),
                           key=lambda c: c.seed)
            if not cells:
                continue
            st = styles[method]
            for steps, loss, val in cells[0].curves:
                if (loss > 0).all():  # a likelihood loss can be negative: no place on a log axis
                    ax.plot(steps, loss, color=st.color, lw=0.8, ls="--", alpha=0.6)
                if np.isfinite(val).any():
                    every = max(1, len(val) // 8)
                    ax.plot(steps, val, color=st.color, lw=1.3, marker=st.marker, ms=2.5, markevery=every)
                    best = int(np.nanargmin(val))
                    ax.plot(steps[best], val[best], "o", color=st.color, ms=6, mfc="none")
                elif method not in no_val:
                    no_val.append(method)
            drawn.append(method)
        ax.set_yscale("log")
        log_ticks(ax, "y")
        ax.grid(True, which="major", alpha=0.3, lw=0.5)
        title = task
        if no_val:
            title += "\n" + "\n".join(wrap_items("no validation curve:", no_val))
        ax.set_title(title)
        ax.set_xlabel("optimisation steps (per network)")
    axes[0].set_ylabel("validation score (solid), training loss (dashed)")
    shared_legend(fig, legend_handles(styles, list(dict.fromkeys(drawn))))
    return fig
