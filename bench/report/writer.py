"""`write_report`: every table, figure and ``index.html`` of a run, in an order that
keeps what matters safe. Tables first (written before any figure is drawn), then each
figure on its own guard: a figure that fails is recorded (warning, note at the top of
``index.html``) and the others and all tables stay. A derived table that fails is
treated the same way; only the per-task leaderboards may raise.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import matplotlib as mpl
from matplotlib.figure import Figure

from bench.report.ablation import ablation_grid, unseen_grid
from bench.report.aggregate import Summary
from bench.report.artifacts import Artifacts, TaskInfo, load_artifacts, task_info
from bench.report.calibration import INTRO as CALIBRATION_INTRO
from bench.report.calibration import calibration_grid
from bench.report.curves import plot_learning_curves
from bench.report.dynamics import plot_rollout_growth, plot_spectra
from bench.report.figures import RC, method_styles, plot_accuracy_vs_speedup, plot_error_vs_k, save_figure
from bench.report.frontier import plot_frontier
from bench.report.grid import Grid, Section, board_grid, ci_grid, slug
from bench.report.html import FigureEntry, render_html
from bench.report.latex import render_grids_latex, render_latex
from bench.report.load import Run, load_run
from bench.report.markdown import LEGEND, provenance_lines, render_markdown, section_markdown
from bench.report.panels import plot_panels
from bench.report.ranks import rank_grid
from bench.report.reliability import plot_reliability
from bench.report.scaling import CAPTION as SCALING_CAPTION
from bench.report.scaling import TaskScaling, figure_stem, plot_scaling, scaling_section, scaling_tasks
from bench.report.tables import Leaderboard, build_leaderboards

T = TypeVar("T")

TEX_FILES = ("leaderboard.tex", "leaderboard_ci.tex", "ranks.tex", "ablation.tex", "unseen_k.tex")
TEXT_FILES = ("leaderboard.md", *TEX_FILES, "aggregate.csv", "index.html")

RANKS_INTRO = "Average rank of each method per task and over all tasks (lower is better)."
ABLATION_INTRO = "NeuroScale variants (methods named neuroscale:<params>) against the full neuroscale model."
UNSEEN_INTRO = "How the error grows at a coarse-graining factor not used in training."


@dataclass
class Derived:
    """The tables beyond the leaderboards (None / empty: not available for this run)."""

    ranks: Grid | None = None
    ablation: list[Grid] = field(default_factory=list)
    unseen: Grid | None = None
    calibration: list[Grid] = field(default_factory=list)
    ci: list[Grid] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _guard(what: str, problems: list[str], fn: Callable[[], T], default: T) -> T:
    """``fn()``, or ``default`` with the error recorded in ``problems`` and warned."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 -- one broken part must not lose the others
        msg = f"{what} failed: {type(e).__name__}: {e}"
        warnings.warn(msg + "\n" + traceback.format_exc(limit=4), stacklevel=3)
        problems.append(msg)
        return default


def derived_tables(summary: Summary, boards: Sequence[Leaderboard]) -> Derived:
    d = Derived()
    d.ranks = _guard("cross-task rank table", d.problems, lambda: rank_grid(summary), None)
    d.ablation = _guard("ablation table", d.problems,
                        lambda: [g for t in summary.tasks if (g := ablation_grid(summary, t))], [])
    d.unseen = _guard("unseen-k table", d.problems, lambda: unseen_grid(summary), None)
    d.calibration = _guard("calibration table", d.problems,
                           lambda: [g for t in summary.tasks if (g := calibration_grid(summary, t))], [])
    d.ci = _guard("bootstrap CI tables", d.problems, lambda: [g for b in boards if (g := ci_grid(b))], [])
    return d


def sections(d: Derived) -> list[Section]:
    """The table sections after the leaderboards, in report order."""
    return [
        Section("ranks", "Cross-task summary", RANKS_INTRO, [d.ranks] if d.ranks else [],
                "Needs at least two methods with results.", grid_titles=False),
        Section("ablation", "NeuroScale ablation", ABLATION_INTRO, d.ablation, "No NeuroScale variant in this run."),
        Section("unseen", "Unseen-k generalisation", UNSEEN_INTRO, [d.unseen] if d.unseen else [],
                "No factor is marked unseen in this run.", grid_titles=False),
        Section("calibration", "Calibration across scales", CALIBRATION_INTRO, d.calibration,
                "No probabilistic method in this run."),
    ]


@dataclass(frozen=True)
class FigureJob:
    stem: str
    title: str
    caption: str
    draw: Callable[[], Figure | str]  # a figure, or why there is none


def figure_jobs(summary: Summary, artifacts: Artifacts, infos: dict[str, TaskInfo],
                scaled: Sequence[TaskScaling] = ()) -> list[FigureJob]:
    styles = method_styles(summary.methods)
    jobs = [
        FigureJob("error_vs_k", "Error vs coarse-graining factor",
                  "Relative L2 error vs k per method (mean over seeds, bars: seed std); shaded: unseen factor.",
                  lambda: plot_error_vs_k(summary, styles)),
        FigureJob("accuracy_vs_speedup", "Accuracy vs speedup",
                  "Relative L2 error at the smallest k vs speedup over the fine solver; dashed: Pareto front.",
                  lambda: plot_accuracy_vs_speedup(summary, styles)),
        FigureJob("frontier", "Error-cost frontier",
                  "Relative L2 error vs inference cost per sample, per task and k: each classical solver on the "
                  "grids between the k-coarse grid and the fine grid (lines; j: the solver's grid factor), the "
                  "fine solver a star, each method a point (mean over seeds; bars: seed std).",
                  lambda: plot_frontier(summary, styles)),
        FigureJob("learning_curves", "Learning curves",
                  "Validation error (solid; circle: the epoch whose weights were scored) and training loss "
                  "(dashed) against optimisation steps, seed 0, each network of an ensemble separately.",
                  lambda: plot_learning_curves(summary, artifacts, styles)),
        FigureJob("reliability", "Calibration reliability diagrams",
                  "Observed frequency of y <= F^-1(p) vs quantile level p for the probabilistic methods "
                  "(calibration wrappers included), one panel per task (rows) and k (columns), mean over seeds; "
                  "per k because calibration fitted at the training factors may not transfer to an unseen one "
                  "(marked in the panel title). The diagonal is perfect calibration.",
                  lambda: plot_reliability(summary, artifacts, styles)),
    ]
    for task in summary.tasks:
        info = infos.get(task, TaskInfo())
        jobs.append(FigureJob(
            f"panels_{slug(task)}", f"Test sample fields: {task}",
            "Input, truth, prediction, |error| and predicted sigma for test sample 0 at the smallest k, first "
            "channel; one colour scale per column (truth and prediction share the truth's; |error| on a "
            "log scale).",
            lambda task=task, info=info: plot_panels(summary, artifacts, task, info)))
    jobs += [
        FigureJob("rollout_error", "Rollout error growth",
                  "Relative L2 error of coarse rollouts vs horizon (time-dependent tasks, mean over seeds).",
                  lambda: plot_rollout_growth(summary, styles)),
        FigureJob("energy_spectra", "Energy spectra",
                  "Energy spectrum of test sample 0's prediction vs the truth at the smallest k "
                  "(time-dependent tasks).",
                  lambda: plot_spectra(summary, artifacts, infos, styles)),
    ]
    jobs += [FigureJob(figure_stem(ts.task), f"Data scaling: {ts.task}", SCALING_CAPTION,
                       lambda ts=ts: plot_scaling(ts)) for ts in scaled]  # a --n-train run only
    return jobs


def draw_figures(jobs: list[FigureJob], out: Path) -> list[FigureEntry]:
    entries = []
    for job in jobs:
        stale = [out / f"{job.stem}.png", out / f"{job.stem}.pdf"]
        try:
            with mpl.rc_context(RC):
                fig = job.draw()
                if isinstance(fig, str):
                    for p in stale:
                        p.unlink(missing_ok=True)  # an old image must not pass for this run's
                    entries.append(FigureEntry(job.stem, job.title, job.caption, skipped=fig))
                    continue
                png, pdf = save_figure(fig, out, job.stem)
            entries.append(FigureEntry(job.stem, job.title, job.caption, png.name, pdf.name))
        except Exception as e:  # noqa: BLE001 -- a broken figure must not lose the report
            for p in stale:
                p.unlink(missing_ok=True)
            msg = f"{type(e).__name__}: {e}"
            warnings.warn(f"figure {job.stem} failed: {msg}\n{traceback.format_exc(limit=4)}", stacklevel=2)
            entries.append(FigureEntry(job.stem, job.title, job.caption, error=msg))
    return entries


def figures_markdown(figs: Sequence[FigureEntry]) -> str:
    lines = ["## Figures", ""]
    for f in figs:
        if f.png:
            lines += [f"### {f.title}", "", f"![{f.title}]({f.png})", "", f"{f.caption} ([PDF]({f.pdf}))", ""]
        else:
            why = f"Figure failed: `{f.error}`" if f.error else f"Not drawn: {f.skipped}."
            lines += [f"### {f.title}", "", why, ""]
    return "\n".join(lines)


def _write_scaling(out: Path, run: Run, section: Section | None, figs: Sequence[FigureEntry] = ()) -> None:
    """``scaling.md``: the data-scaling tables (and figures, once drawn) of a ``--n-train``
    run; an old one is removed from a report of a run without."""
    path = out / "scaling.md"
    if section is None:
        path.unlink(missing_ok=True)
        return
    parts = [f"# Data scaling: {run.name}", "", *provenance_lines(run), "", section_markdown(section)]
    parts += [figures_markdown(figs)] if figs else []
    path.write_text("\n".join(parts), encoding="utf-8")


def write_report(run_dir: Path | str, out_dir: Path | str | None = None) -> Path:
    """Write the report of ``run_dir`` into ``out_dir`` (default ``reports/<run name>``
    relative to the working directory); see `bench.report` for the files."""
    run: Run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path("reports") / run.name
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    artifacts = _guard("reading records", problems, lambda: load_artifacts(run.path), Artifacts())
    summary = Summary(run, artifacts)
    boards = build_leaderboards(summary)
    d = derived_tables(summary, boards)
    problems += d.problems
    scaled = _guard("data-scaling tables", problems, lambda: scaling_tasks(summary), [])
    scaling = _guard("data-scaling tables", problems, lambda: scaling_section(scaled, run.meta.get("budgets")),
                     None) if scaled else None  # a --n-train run only
    more = sections(d) + ([scaling] if scaling else [])
    more_md = [section_markdown(x) for x in more]
    files = [f for f in TEXT_FILES if f != "index.html"] + (["scaling.md"] if scaling else [])
    _write_scaling(out, run, scaling)
    (out / "leaderboard.md").write_text(render_markdown(boards, run, more_md), encoding="utf-8")
    (out / "leaderboard.tex").write_text(render_latex(boards, run), encoding="ascii")
    tex = {
        "leaderboard_ci.tex": (d.ci, "bootstrap confidence intervals"),
        "ranks.tex": ([d.ranks] if d.ranks else [], "cross-task ranks"),
        "ablation.tex": (d.ablation, "NeuroScale ablation"),
        "unseen_k.tex": ([d.unseen] if d.unseen else [], "unseen-k generalisation"),
    }
    for name, (grids, what) in tex.items():
        (out / name).write_text(render_grids_latex(grids, what, run), encoding="ascii")
    summary.to_frame().to_csv(out / "aggregate.csv", index=False)

    # Figures last: every table above is on disk whatever happens while drawing.
    size = str(run.meta.get("size") or "small")
    infos = {t: task_info(t, size) for t in summary.tasks}
    figs = draw_figures(figure_jobs(summary, artifacts, infos, scaled), out)
    problems += [f"figure {f.stem}: {f.error}" for f in figs if f.error]
    (out / "leaderboard.md").write_text(render_markdown(boards, run, [*more_md, figures_markdown(figs)]),
                                        encoding="utf-8")
    _write_scaling(out, run, scaling, [f for f in figs if f.stem.startswith("scaling_")])
    boards_section = Section("leaderboards", "Leaderboards", LEGEND.replace("**", ""),
                             [board_grid(b) for b in boards], "No results recorded.")
    page = render_html(run, [boards_section, *more], figs, files, problems)
    (out / "index.html").write_text(page, encoding="utf-8")
    return out
