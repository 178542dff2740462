"""The error-cost frontier figure: for every task and factor k, rel_l2 against inference
cost per sample (log-log). Each classical solver's ladder (`bench.ladder`: the solver on
the grids between the k-coarse grid and the fine grid, restricted to k) is a line with a
point per rung, labelled by its grid factor j; the fine solver is a star; each method is
a point (mean over seeds, bars: seed std of the error). A method below a ladder line is
more accurate than the classical solver at its cost; to the left of it, cheaper at its
accuracy.

The ladder comes from ``<run>/ladder/*.json`` (measured by the run's cells) and the
methods' points from results.csv (``rel_l2`` and ``infer_s`` / ``n``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from bench.report.aggregate import Summary
from bench.report.figures import PANEL_H, PANEL_W, Style, legend_handles, log_ticks, shared_legend
from bench.report.load import Run

EXACT = 1e-5  # rel_l2 at or below this: the rung reproduces the truth (float32 storage)
FAMILY_STYLE = {"fv": ("k", "-"), "spectral": ("0.45", "--"), "dns": ("0.65", "-."), "fine": ("k", "")}


def load_ladders(run: Run) -> dict[str, list[dict[str, Any]]]:
    """The rungs per task from ``<run>/ladder/*.json`` (the newest file per task)."""
    out: dict[str, list[dict[str, Any]]] = {}
    folder = Path(run.path) / "ladder"
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            rungs = json.loads(path.read_text())["rungs"]
        except (OSError, ValueError, KeyError):
            continue
        task = next((t for t in run.tasks if path.stem.startswith(t.replace(":", "_") + "__")), None)
        if task is not None:
            out[task] = rungs
    return out


def _method_points(run: Run, task: str, k: int) -> dict[str, tuple[float, float, float]]:
    """``{method: (cost per sample, mean rel_l2, seed std)}`` from results.csv."""
    df = run.results
    sub = df[(df.task == task) & (df.k == k) & (df.status == "ok")]
    out = {}
    for method, rows in sub.groupby("method"):
        err = rows[rows.metric == "rel_l2"].value
        inf = rows[rows.metric == "infer_s"]
        if err.empty or inf.empty:
            continue
        cost = float((inf.value / inf.n.clip(lower=1)).mean())
        out[str(method)] = (cost, float(err.mean()), float(err.std(ddof=1)) if len(err) > 1 else 0.0)
    return out


def plot_frontier(summary: Summary, styles: dict[str, Style]) -> Figure | str:
    run = summary.run
    ladders = load_ladders(run)
    panels = [(t, k) for t in summary.tasks if t in ladders for k in summary.ks(t, "rel_l2")]
    if not panels:
        return "no classical ladder in this run (recorded by runs since session 4)"
    tasks = list(dict.fromkeys(t for t, _ in panels))
    ncols = max(sum(1 for t, _ in panels if t == task) for task in tasks)
    fig = Figure(figsize=(PANEL_W * ncols, (PANEL_H + 0.4) * len(tasks) + 0.5), layout="constrained")
    grid = fig.subplots(len(tasks), ncols, squeeze=False)
    axes = [grid[tasks.index(t)][[k2 for t2, k2 in panels if t2 == t].index(k)] for t, k in panels]
    for r, task in enumerate(tasks):  # a task with fewer factors leaves its last panels empty
        for c in range(sum(1 for t, _ in panels if t == task), ncols):
            grid[r][c].set_visible(False)
    drawn: list[str] = []
    for ax, (task, k) in zip(axes, panels):
        points = _method_points(run, task, k)
        rungs_k = [r for r in ladders[task] if r["k"] == k]
        # a rung at round-off (the fine solver itself) would stretch the log axis over
        # eight decades: it is drawn on the panel's floor, marked "exact"
        shown = [r["error"] for r in rungs_k if r["error"] > EXACT] + [e for _, e, _ in points.values() if e > 0]
        floor = min(shown, default=1e-3) / 3
        for family in sorted({r["family"] for r in rungs_k}):
            rungs = sorted((r for r in rungs_k if r["family"] == family), key=lambda r: -r["j"])
            color, ls = FAMILY_STYLE.get(family, ("0.3", ":"))
            ys = [max(r["error"], floor) for r in rungs]
            fine = family == "fine"
            ax.plot([r["cost_s"] for r in rungs], ys, color=color, ls=ls or "none", marker="*" if fine else "s",
                    ms=8 if fine else 3, lw=1.2, label="fine solver" if fine else f"classical {family}")
            for r, y in zip(rungs, ys if not fine else []):
                exact = " (exact)" if r["error"] <= EXACT else ""
                ax.annotate(f"j={r['j']}{exact}", (r["cost_s"], y), fontsize=6, color=color,
                            xytext=(3, 2), textcoords="offset points")
        for method, (cost, err, sd) in points.items():
            if method not in styles or not (cost > 0 and err > 0):
                continue
            st = styles[method]
            ax.errorbar([cost], [err], yerr=[[min(sd, err * 0.99)], [sd]], color=st.color, marker=st.marker, ms=5,
                        capsize=2, lw=1)
            drawn.append(method)
        ax.set_xscale("log")
        ax.set_yscale("log")
        log_ticks(ax, "xy")
        ax.grid(True, which="major", alpha=0.3, lw=0.5)
        unseen = " (unseen)" if summary.is_unseen(task, k) else ""
        ax.set_title(f"{task}, $k={k}${unseen}")
        ax.set_xlabel("inference cost per sample (s)")
        ax.legend(fontsize=7, loc="lower left")
    for row in grid:
        row[0].set_ylabel("relative $L_2$ error")
    shared_legend(fig, legend_handles(styles, list(dict.fromkeys(drawn))))
    return fig


__all__ = ["load_ladders", "plot_frontier"]
