"""Field panels for the fixed test sample (index 0 of the test set, the same in every
cell): per task, rows = methods, columns = input, truth ``R_k u``, prediction,
``|prediction - truth|`` and predicted σ (``n/a`` for deterministic methods), at the
task's smallest k, first channel of input and output. Each column has one colour scale
shared by all rows (truth and prediction share the truth's; |error| is on a log scale
over three decades), so rows compare directly.

Shown methods: the `MAX_METHODS` best by mean rel_l2 at that k, plus the ``mean``
baseline (a sense of scale) when it is in the run; each from its smallest seed with a
snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import FuncFormatter, MaxNLocator

from bench.metrics import PRIMARY
from bench.report.aggregate import Summary
from bench.report.artifacts import Artifacts, TaskInfo

MAX_METHODS = 4
BASELINE = "mean"
CELL_IN = 1.25  # inches per panel
COLUMNS = ("input", "truth", "prediction", "|error|", "predicted σ")
ERROR_DECADES = 1e3  # the |error| colour scale spans max/1e3 .. max (log)


@dataclass(frozen=True)
class Snapshot:
    method: str
    seed: int
    arrays: dict[str, np.ndarray]


def _snapshot(summary: Summary, artifacts: Artifacts, task: str, method: str) -> Snapshot | None:
    for seed in summary.run.seeds:
        cell = artifacts.cell(task, method, seed)
        if cell is not None and cell.snapshot is not None:
            arrays = cell.load_snapshot()
            if arrays:
                return Snapshot(method, seed, arrays)
    return None


def snapshot_k(summary: Summary, snaps: list[Snapshot], task: str) -> int | None:
    """Smallest k (among the task's factors) for which some snapshot has a prediction."""
    ks = summary.ks(task, PRIMARY) or summary.run.k_test
    ks = sorted(set(ks) | {int(n[6:]) for s in snaps for n in s.arrays if n.startswith("mean_k")})
    return next((k for k in ks if any(f"mean_k{k}" in s.arrays for s in snaps)), None)


def choose_snapshots(summary: Summary, artifacts: Artifacts, task: str) -> tuple[list[Snapshot], int | None]:
    """(snapshots of the shown methods in display order, k)."""
    snaps = [s for m in summary.methods if (s := _snapshot(summary, artifacts, task, m)) is not None]
    k = snapshot_k(summary, snaps, task)
    if k is None:
        return [], None
    snaps = [s for s in snaps if f"mean_k{k}" in s.arrays and f"target_k{k}" in s.arrays]

    def err(s: Snapshot) -> float:
        e = summary.entry(task, s.method, PRIMARY, k)
        return e.mean if e.ok else np.inf

    ranked = sorted(snaps, key=err)  # stable: run order among ties / methods without a value
    shown = ranked[:MAX_METHODS]
    shown += [s for s in snaps if s.method == BASELINE and s not in shown]
    return shown, k


def _image(ax: Axes, field: np.ndarray, cmap: str, norm: Normalize) -> AxesImage:
    # The lowest colour for zeros under a log norm (masked otherwise) and values below it.
    cm = mpl.colormaps[cmap]
    im = ax.imshow(field, origin="lower", cmap=cm.with_extremes(bad=cm(0.0), under=cm(0.0)), norm=norm,
                   interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():  # a full thin frame (the report's rc hides top/right)
        spine.set_visible(True)
        spine.set_linewidth(0.4)
    return im


def _limits(fields: list[np.ndarray], signed: bool) -> tuple[float, float]:
    lo, hi = float(min(f.min() for f in fields)), float(max(f.max() for f in fields))
    if signed and lo < 0 < hi:  # a diverging map centred on zero
        m = max(-lo, hi)
        return -m, m
    return (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)


def _fields(snaps: list[Snapshot], k: int) -> dict[str, list[np.ndarray | None]]:
    """Channel 0 of every column's field per shown method (None: no σ, deterministic)."""
    truth = [s.arrays[f"target_k{k}"][0] for s in snaps]
    pred = [s.arrays[f"mean_k{k}"][0] for s in snaps]
    return {
        "input": [s.arrays["input"][0] for s in snaps],
        "truth": list(truth),
        "prediction": list(pred),
        "|error|": [np.abs(p - t) for p, t in zip(pred, truth)],
        "predicted σ": [np.sqrt(np.maximum(s.arrays[f"var_k{k}"][0], 0.0)) if f"var_k{k}" in s.arrays else None
                        for s in snaps],
    }


def _norms(fields: dict[str, list[np.ndarray | None]]) -> dict[str, Normalize]:
    """One colour scale per column, shared by all rows."""
    present = {c: [a for a in v if a is not None] for c, v in fields.items()}
    truth = Normalize(*_limits(present["truth"], signed=True))
    err_max = max(float(e.max()) for e in present["|error|"]) or 1.0
    sig_max = max((float(a.max()) for a in present["predicted σ"]), default=0.0) or 1.0
    return {
        "input": Normalize(*_limits(present["input"], signed=True)),
        "truth": truth, "prediction": truth,  # the truth's scale: a wrong amplitude shows
        # Errors of the shown methods can differ by orders of magnitude (the mean baseline):
        # a log scale keeps every row readable on one shared scale.
        "|error|": LogNorm(err_max / ERROR_DECADES, err_max),
        "predicted σ": Normalize(0.0, sig_max),
    }


def plot_panels(summary: Summary, artifacts: Artifacts, task: str, info: TaskInfo) -> Figure | str:
    """The panel figure of ``task``, or the reason there is none."""
    if info.kind == "graph":
        return (f"task {task} lives on the nodes of a graph: its fields have no 2-D image "
                "(the per-node snapshots are saved with the records)")
    snaps, k = choose_snapshots(summary, artifacts, task)
    if not snaps or k is None:
        return f"no finished cell of task {task} saved a test-sample snapshot"
    fields = _fields(snaps, k)
    norms = _norms(fields)
    any_sigma = any(a is not None for a in fields["predicted σ"])
    columns = COLUMNS if any_sigma else COLUMNS[:-1]  # no σ column when no shown method has one
    diverging = norms["truth"].vmin < 0  # a signed field (vorticity): centred diverging map
    cmaps = {"input": "viridis", "truth": "RdBu_r" if diverging else "viridis",
             "prediction": "RdBu_r" if diverging else "viridis", "|error|": "inferno", "predicted σ": "cividis"}
    n = len(snaps)
    fig = Figure(figsize=(CELL_IN * len(columns) + 0.4, CELL_IN * n + 1.3), layout="constrained")
    axes = fig.subplots(n, len(columns), squeeze=False)
    for j, col in enumerate(columns):
        im = None
        for i, data in enumerate(fields[col]):
            if data is None:
                axes[i, j].set_axis_off()
                axes[i, j].text(0.5, 0.5, "n/a\n(deterministic)", ha="center", va="center", fontsize=7,
                                color="0.4", transform=axes[i, j].transAxes)
            else:
                im = _image(axes[i, j], data, cmaps[col], norms[col])
        if im is not None:
            _colorbar(fig, im, list(axes[:, j]), log=col == "|error|")
        axes[0, j].set_title(col if col != "input" else f"input ({_name(info.in_names)})", fontsize=8)
    for i, s in enumerate(snaps):
        axes[i, 0].set_ylabel(f"{s.method}\n(seed {s.seed})", fontsize=7)
    title = f"{task}: test sample 0, output {_name(info.out_names)}, $k={k}$ (input on the fine grid)"
    fig.suptitle(title + ("" if any_sigma else "\nno probabilistic method shown: no predicted σ"), fontsize=8)
    return fig


def _colorbar(fig: Figure, im: AxesImage, axes: list[Axes], log: bool) -> None:
    cb = fig.colorbar(im, ax=axes, location="bottom", shrink=0.9, aspect=12, extend="min" if log else "neither")
    if not log:  # three short labels: the default crowds a 1-inch bar
        cb.ax.xaxis.set_major_locator(MaxNLocator(3))
        cb.ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    cb.ax.tick_params(labelsize=6)


def _name(names: tuple[str, ...]) -> str:
    """'channel 0 "omega"' when the task names its channels, else 'channel 0'."""
    return f'channel 0 "{names[0]}"' if names else "channel 0"
