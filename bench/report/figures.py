"""Paper figures (PNG + PDF): error vs coarse-graining factor, accuracy vs speedup, and
the helpers every report figure shares (styles, panels, legend, log ticks, saving).

Uses `matplotlib.figure.Figure` directly (Agg canvas for PNG, the PDF canvas for PDF)
and a local ``rc_context``: no pyplot, no backend switch, no global rcParams change.
Method styles are a deterministic function of the run's method order, so a method has
the same colour and marker in every panel and figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

from bench.metrics import PRIMARY, SPEEDUP
from bench.report.aggregate import Entry, Summary, join_states

RC = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False,
    "axes.spines.right": False, "pdf.fonttype": 42, "ps.fonttype": 42,  # editable text in PDF
}
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h", "<", ">", "p", "*")
PANEL_W, PANEL_H = 3.1, 2.7  # inches; two panels fit a two-column paper width
DPI = 200


@dataclass(frozen=True)
class Style:
    color: tuple[float, float, float]
    marker: str


def method_styles(methods: Sequence[str]) -> dict[str, Style]:
    """The i-th method gets colour i (colour-blind palette, 10 colours) and marker i;
    with 10-60 methods the (colour, marker) pair stays unique."""
    import seaborn  # deferred: only needed for the palette, and slow to import

    palette = seaborn.color_palette("colorblind", 10)
    return {m: Style(tuple(palette[i % 10]), MARKERS[i % len(MARKERS)]) for i, m in enumerate(methods)}


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
    # bbox "tight": long titles or labels are never cut off at the figure edge
    fig.savefig(png, dpi=DPI, bbox_inches="tight", pad_inches=0.03)
    fig.savefig(pdf, bbox_inches="tight", pad_inches=0.03, metadata={"CreationDate": None})  # reproducible
    return [png, pdf]


def log_error_bars(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Asymmetric error bars that stay positive on a log axis (one seed: no bar)."""
    std = np.nan_to_num(std, nan=0.0)
    return np.vstack([np.minimum(std, 0.9 * mean), std])


def legend_handles(styles: dict[str, Style], methods: Sequence[str]) -> list[Line2D]:
    return [
        Line2D([], [], color=styles[m].color, marker=styles[m].marker, ms=4, lw=1.3, label=m)
        for m in methods
    ]


def _absent_label(summary: Summary, task: str, method: str, entries: Sequence[Entry]) -> str:
    status = summary.row_status(task, method)
    if status == "ok":
        status = next((e.state for e in entries if not e.ok), "no value")
    return f"{method} ({status})"


def _partial(summary: Summary, task: str, method: str) -> str | None:
    """'fno: 1/3 seeds failed' when some (not all) seeds of a plotted method did not finish."""
    cells = summary.cells(task, method)
    bad = [c.status for c in cells if c.status != "ok"]
    return f"{method}: {len(bad)}/{len(cells)} seeds {join_states(bad)}" if bad else None


def wrap_items(prefix: str, items: Sequence[str], width: int = 40) -> list[str]:
    """``prefix item1, item2, ...`` in lines of about ``width`` chars, never splitting an item."""
    lines = [prefix]
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(lines[-1]) + 1 + len(piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return lines


def _title(task: str, absent: Sequence[str], partial: Sequence[str] = ()) -> str:
    notes = wrap_items("not shown:", absent) if absent else []
    return "\n".join([task, *notes, *partial])


def log_ticks(ax: Axes, which: str = "xy") -> None:
    """Plain labels (0.02, 50) at 1-2-5 (or every integer mantissa) ticks when an axis
    spans few decades; matplotlib's default would label minor ticks as 2x10^1."""
    pairs = {"x": (ax.xaxis, ax.get_xlim()), "y": (ax.yaxis, ax.get_ylim())}
    for axis, (lo, hi) in (pairs[w] for w in which):
        decades = np.log10(hi / lo) if lo > 0 and hi > lo else 0.0
        subs = tuple(range(1, 10)) if decades < 1 else (1, 2, 5) if decades < 2.5 else (1,)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def panel_figure(n_panels: int) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(PANEL_W * n_panels, PANEL_H + 0.5), layout="constrained")
    return fig, list(fig.subplots(1, n_panels, squeeze=False)[0])


#: legend rows below the panels before it moves to the right of a widened figure
MAX_LEGEND_ROWS_BELOW = 3
LEGEND_ROW_IN = 0.19  # inches per legend row at legend.fontsize 8


def shared_legend(fig: Figure, handles: list[Line2D]) -> None:
    """One shared legend outside the panels, so it never covers data: below them when it
    fits in a few rows, else in columns to the right, the figure widened to hold it (a
    20-method legend below one panel collapsed the axes)."""
    if not handles:
        return
    entry_in = 0.55 + 0.07 * max(len(h.get_label()) for h in handles)
    # as many columns as fit the figure width (a too-wide legend would be clipped)
    ncols = max(1, min(len(handles), int(fig.get_figwidth() // entry_in)))
    if math.ceil(len(handles) / ncols) <= MAX_LEGEND_ROWS_BELOW:
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols, frameon=False)
        return
    rows = max(4, int(fig.get_figheight() / LEGEND_ROW_IN))
    ncols = math.ceil(len(handles) / rows)
    fig.set_figwidth(fig.get_figwidth() + ncols * entry_in)
    fig.legend(handles=handles, loc="outside right upper", ncols=ncols, frameon=False)


def _shade_unseen(ax: Axes, ks: Sequence[int], unseen: Sequence[bool]) -> None:
    """Grey band around each unseen factor, half-way (geometrically) to its neighbours."""
    for i, k in enumerate(ks):
        if unseen[i]:
            lo = np.sqrt(ks[i - 1] * k) if i > 0 else k / 1.5
            hi = np.sqrt(k * ks[i + 1]) if i + 1 < len(ks) else k * 1.5
            ax.axvspan(lo, hi, color="0.92", lw=0, zorder=0)


def _error_panel(ax: Axes, summary: Summary, task: str, styles: dict[str, Style]) -> list[str]:
    """Draw one task's rel_l2-vs-k panel; return the methods drawn."""
    ks = summary.ks(task, PRIMARY) or summary.run.k_test
    unseen = [summary.is_unseen(task, k) for k in ks]
    _shade_unseen(ax, ks, unseen)
    drawn, absent, notes = [], [], []
    for method in summary.methods:
        entries = [summary.entry(task, method, PRIMARY, k) for k in ks]
        pts = [(k, e.mean, e.std) for k, e in zip(ks, entries) if e.ok and e.mean > 0]
        if not pts:
            absent.append(_absent_label(summary, task, method, entries))
            continue
        x, y, s = (np.asarray(v, dtype=float) for v in zip(*pts))
        st = styles[method]
        ax.errorbar(x, y, yerr=log_error_bars(y, s), color=st.color, marker=st.marker, ms=4, lw=1.3,
                    capsize=2, label=method)
        drawn.append(method)
        notes += [p] if (p := _partial(summary, task, method)) else []
        gaps = [f"{e.state} at k={k}" for k, e in zip(ks, entries) if not e.ok]
        notes += [f"{method}: " + ", ".join(gaps)] if gaps else []
    if ks:
        ax.set_xscale("log", base=2)
        ax.set_xlim(ks[0] / 1.5, ks[-1] * 1.5)
        ax.set_xticks(ks, [f"{k}\n(unseen)" if u else str(k) for k, u in zip(ks, unseen)])
        ax.xaxis.set_minor_locator(NullLocator())
    if drawn:
        ax.set_yscale("log")
        log_ticks(ax, "y")
    else:
        ax.text(0.5, 0.5, "no finished results", ha="center", va="center", transform=ax.transAxes)
    ax.grid(True, which="major", alpha=0.3, lw=0.5)
    ax.set_title(_title(task, absent, notes))
    ax.set_xlabel("coarse-graining factor $k$")
    return drawn


def plot_error_vs_k(summary: Summary, styles: dict[str, Style]) -> Figure:
    """rel_l2 vs k per method (log-log, error bars over seeds), one panel per task;
    unseen factors shaded and labelled on the axis."""
    fig, axes = panel_figure(max(1, len(summary.tasks)))
    drawn = [m for ax, task in zip(axes, summary.tasks) for m in _error_panel(ax, summary, task, styles)]
    if not summary.tasks:
        axes[0].text(0.5, 0.5, "no results recorded", ha="center", va="center", transform=axes[0].transAxes)
    axes[0].set_ylabel("relative $L_2$ error")
    shared_legend(fig, legend_handles(styles, [m for m in summary.methods if m in drawn]))
    return fig


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (speedup, error) points (higher speedup, lower error), by speedup."""
    front, best_err = [], np.inf
    for s, e in sorted(points, key=lambda p: (-p[0], p[1])):
        if e < best_err:
            front.append((s, e))
            best_err = e
    return sorted(front)


MAX_LABELLED_POINTS = 8


def _speed_panel(ax: Axes, summary: Summary, task: str, styles: dict[str, Style]) -> tuple[list[str], bool]:
    """Draw one task's accuracy-vs-speedup panel; return (methods drawn, front drawn)."""
    k = summary.smallest_k(task, PRIMARY)
    k_sp = k if k in summary.ks(task, SPEEDUP) else summary.smallest_k(task, SPEEDUP)
    points, drawn, absent, notes = [], [], [], []
    for method in summary.methods:
        err = summary.entry(task, method, PRIMARY, k)
        spd = summary.entry(task, method, SPEEDUP, k_sp)
        if not (err.ok and spd.ok and err.mean > 0 and spd.mean > 0):
            absent.append(_absent_label(summary, task, method, [err, spd]))
            continue
        st = styles[method]
        ax.errorbar(spd.mean, err.mean, xerr=log_error_bars(np.array([spd.mean]), np.array([spd.std])),
                    yerr=log_error_bars(np.array([err.mean]), np.array([err.std])), color=st.color,
                    marker=st.marker, ms=5, capsize=2, lw=1.0, zorder=3)
        points.append((spd.mean, err.mean))
        drawn.append(method)
        notes += [p] if (p := _partial(summary, task, method)) else []
    front = pareto_front(points)
    # Name every point while that stays legible; in a crowded panel only the front's
    # (the legend's markers identify the rest).
    on_front = set(front)
    for method, pt in zip(drawn, points):
        if len(points) <= MAX_LABELLED_POINTS or pt in on_front:
            ax.annotate(method, pt, xytext=(4, 4), textcoords="offset points", fontsize=7, color="0.15")
    if len(front) > 1:
        # step "pre": between two front points the best error at >= that speedup is the
        # right-hand point's
        ax.step(*zip(*front), where="pre", ls="--", lw=1.0, color="0.35", zorder=2, label="Pareto front")
    if points:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.margins(0.2)
        log_ticks(ax)
    else:
        ax.text(0.5, 0.5, "no method with both values", ha="center", va="center", transform=ax.transAxes)
    ax.grid(True, which="major", alpha=0.3, lw=0.5)
    ax.set_title(_title(task, absent, notes))
    ax.set_xlabel(f"speedup over fine solver{f' ($k={k_sp}$)' if k_sp is not None else ''}")
    ax.set_ylabel(f"relative $L_2$ error{f' ($k={k}$)' if k is not None else ''}")
    return drawn, len(front) > 1


def plot_accuracy_vs_speedup(summary: Summary, styles: dict[str, Style]) -> Figure:
    """rel_l2 at the smallest k vs speedup (log-log), one panel per task, labelled points
    and the Pareto front (best error attainable at at least a given speedup)."""
    fig, axes = panel_figure(max(1, len(summary.tasks)))
    drawn, any_front = set(), False
    for ax, task in zip(axes, summary.tasks):
        methods, front = _speed_panel(ax, summary, task, styles)
        drawn.update(methods)
        any_front |= front
    handles = legend_handles(styles, [m for m in summary.methods if m in drawn])
    if any_front:
        handles.append(Line2D([], [], ls="--", lw=1.0, color="0.35", label="Pareto front"))
    shared_legend(fig, handles)
    return fig
