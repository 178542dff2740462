"""Figures for time-dependent tasks (those that record ``rollout_rel_l2@n``):

* rollout error growth: rel_l2 of the coarse rollout against the filtered truth vs the
  horizon n (mean ± std over seeds, log y) at the task's smallest k with values;
* energy spectra of the fixed test sample's prediction vs the truth at the smallest k.
  Which spectrum depends on the task's output channels (`TaskInfo`): velocity channels
  ``u`` and ``w``/``v`` give the kinetic energy ½(|û|²+|ŵ|²); a vorticity channel
  (``omega``) gives E(κ) = |ω̂|²/(2κ²) (2-D incompressible flow); anything else the power
  spectrum of channel 0. Fully periodic fields are shell-summed over |κ| (radial
  spectrum); a field periodic in x only (``periodic-x/...``, walls in z) gets the x
  spectrum averaged over z, since a wall-normal FFT would see a spurious jump.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from bench.report.aggregate import Summary
from bench.report.artifacts import Artifacts, TaskInfo
from bench.report.figures import (
    Style,
    legend_handles,
    log_error_bars,
    log_ticks,
    panel_figure,
    shared_legend,
    wrap_items,
)
from bench.report.panels import choose_snapshots

ROLLOUT = "rollout_rel_l2@"


def horizons(summary: Summary, task: str) -> list[int]:
    return sorted(int(m[len(ROLLOUT):]) for m in summary.metrics(task) if m.startswith(ROLLOUT))


def time_dependent_tasks(summary: Summary) -> list[str]:
    return [t for t in summary.tasks if horizons(summary, t)]


def plot_rollout_growth(summary: Summary, styles: dict[str, Style]) -> Figure | str:
    tasks = time_dependent_tasks(summary)
    if not tasks:
        return "no time-dependent task (no rollout_rel_l2@n metric) in this run"
    fig, axes = panel_figure(len(tasks))
    drawn: list[str] = []
    for ax, task in zip(axes, tasks):
        hs = horizons(summary, task)
        k = summary.smallest_k(task, f"{ROLLOUT}{hs[0]}")
        absent = []
        for method in summary.methods:
            entries = [summary.entry(task, method, f"{ROLLOUT}{h}", k) for h in hs]
            pts = [(h, e.mean, e.std) for h, e in zip(hs, entries) if e.ok and e.mean > 0]
            if not pts:
                absent.append(method)
                continue
            x, y, s = (np.asarray(v, dtype=float) for v in zip(*pts))
            st = styles[method]
            ax.errorbar(x, y, yerr=log_error_bars(y, s), color=st.color, marker=st.marker, ms=4, lw=1.3, capsize=2)
            drawn.append(method)
        ax.set_xscale("log", base=2)
        ax.set_xticks(hs, [str(h) for h in hs])
        if ax.lines:
            ax.set_yscale("log")
            log_ticks(ax, "y")
        else:
            ax.text(0.5, 0.5, "no method with a rollout", ha="center", va="center", transform=ax.transAxes)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.grid(True, which="major", alpha=0.3, lw=0.5)
        title = f"{task} ($k={k}$)"
        if absent:
            title += "\n" + "\n".join(wrap_items("no rollout:", absent))
        ax.set_title(title)
        ax.set_xlabel("rollout horizon $n$ (steps)")
    axes[0].set_ylabel("relative $L_2$ error of the rollout")
    shared_legend(fig, legend_handles(styles, [m for m in summary.methods if m in drawn]))
    return fig


# ---- spectra --------------------------------------------------------------------------
def _wavenumbers(h: int, w: int) -> np.ndarray:
    """|κ| of every 2-D FFT mode, in integer units (cycles per domain length)."""
    ky, kx = np.meshgrid(np.fft.fftfreq(h, 1.0 / h), np.fft.fftfreq(w, 1.0 / w), indexing="ij")
    return np.hypot(kx, ky)


def _shell_sum(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of a 2-D FFT power over integer shells |κ| = 1..min(H, W)//2."""
    h, w = power.shape
    shell = np.rint(_wavenumbers(h, w)).astype(int)
    kmax = min(h, w) // 2
    e = np.bincount(shell.ravel(), weights=power.ravel(), minlength=kmax + 1)
    return np.arange(1, kmax + 1, dtype=float), e[1:kmax + 1]


def _power(f: np.ndarray, periodic_x_only: bool) -> np.ndarray:
    """|f̂|² normalised by the grid size (Parseval: sums to the mean square)."""
    if periodic_x_only:
        return np.abs(np.fft.fft(f, axis=-1) / f.shape[-1]) ** 2
    return np.abs(np.fft.fft2(f) / f.size) ** 2


def energy_spectrum(state: np.ndarray, info: TaskInfo) -> tuple[np.ndarray, np.ndarray, str]:
    """(κ, E(κ), what) of a (C, H, W) field; see the module docstring."""
    names = [n.lower() for n in info.out_names]
    x_only = info.boundary.startswith("periodic-x")
    vel = [names.index(n) for n in ("u", "w", "v") if n in names][:2] if "u" in names else []
    if len(vel) == 2:
        power, what = 0.5 * (_power(state[vel[0]], x_only) + _power(state[vel[1]], x_only)), "kinetic energy"
    elif names and names[0] in ("omega", "vorticity") and not x_only:
        # per mode |û|² = |ω̂|²/|κ|² for a 2-D incompressible flow (the mean mode carries none)
        kk = _wavenumbers(*state.shape[-2:])
        power = 0.5 * _power(state[0], False) / np.where(kk > 0, kk, np.inf) ** 2
        what = "kinetic energy from vorticity"
    else:
        power, what = _power(state[0], x_only), f"power of channel 0{f' ({names[0]})' if names else ''}"
    if x_only:  # x spectrum averaged over z; κx and -κx folded together
        w = power.shape[-1]
        kx = np.abs(np.fft.fftfreq(w, 1.0 / w)).astype(int)
        e = np.bincount(kx, weights=power.mean(axis=0), minlength=w // 2 + 1)
        return np.arange(1, w // 2 + 1, dtype=float), e[1:w // 2 + 1], what + ", x spectrum"
    kappa, e = _shell_sum(power)
    return kappa, e, what


def plot_spectra(summary: Summary, artifacts: Artifacts, infos: dict[str, TaskInfo],
                 styles: dict[str, Style]) -> Figure | str:
    graphs = [t for t in time_dependent_tasks(summary) if infos.get(t, TaskInfo()).kind == "graph"]
    tasks = [t for t in time_dependent_tasks(summary)
             if t not in graphs and choose_snapshots(summary, artifacts, t)[0]]
    if not tasks:
        skipped = f" (graph tasks have no wavenumber spectrum: {', '.join(graphs)})" if graphs else ""
        return f"no time-dependent grid task with a saved test-sample snapshot in this run{skipped}"
    fig, axes = panel_figure(len(tasks))
    drawn: list[str] = []
    for ax, task in zip(axes, tasks):
        snaps, k = choose_snapshots(summary, artifacts, task)
        info = infos.get(task, TaskInfo())
        kappa, e_true, what = energy_spectrum(snaps[0].arrays[f"target_k{k}"], info)
        ax.loglog(kappa, e_true, color="black", lw=2.0, label="truth", zorder=4)
        for s in snaps:
            kp, e, _ = energy_spectrum(s.arrays[f"mean_k{k}"], info)
            st = styles[s.method]
            ax.loglog(kp, e, color=st.color, marker=st.marker, ms=3, lw=1.1, zorder=3)
            drawn.append(s.method)
        log_ticks(ax)
        ax.grid(True, which="major", alpha=0.3, lw=0.5)
        ax.set_title(f"{task} ($k={k}$, test sample 0)\n{what}")
        ax.set_xlabel(r"wavenumber $\kappa$ (per domain length)")
    axes[0].set_ylabel(r"$E(\kappa)$")
    handles = legend_handles(styles, [m for m in summary.methods if m in drawn])
    handles.insert(0, Line2D([], [], color="black", lw=2.0, label="truth $R_k u$"))
    shared_legend(fig, handles)
    return fig
