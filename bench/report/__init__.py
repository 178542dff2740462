"""Reports from a run directory: leaderboards (Markdown, LaTeX, HTML) with bootstrap CIs,
cross-task ranks, the NeuroScale ablation and unseen-k tables, figures, and ``index.html``.

Every number comes from the run: ``results.csv`` (seed aggregation in `aggregate`) and
``records/*.json`` (per-sample values for CIs, calibration curves, test-sample fields).
Failed, diverged, timed-out and n/a cells stay visible in every table and figure.

Public API::

    write_report(run_dir, out_dir=None) -> Path   # reports/<run name>/ by default
    summary_table(run_dir) -> str                 # compact per-task text for the terminal

Files written (`REPORT_FILES` always; `OPTIONAL_FIGURES` when the run has the data)::

    index.html            everything below on one self-contained page, with provenance
    leaderboard.md        per-task leaderboards (mean ± std [95% CI]), then the cross-task
                          ranks, ablation, unseen-k tables and the figures
    leaderboard.tex       per-task booktabs tables (mean ± std; CIs in leaderboard_ci.tex)
    leaderboard_ci.tex    95% bootstrap CIs of the per-sample metrics, one table per task
    ranks.tex, ablation.tex, unseen_k.tex
    aggregate.csv         every seed aggregate (mean, std, ci_lo, ci_hi, issues)
    error_vs_k, accuracy_vs_speedup                         (.png + .pdf)
    reliability, panels_<task>, rollout_error, energy_spectra (.png + .pdf, when data exist)
    scaling.md, scaling_<task> (.png + .pdf)  a data-scaling run (--n-train): error against
                          training samples with fitted exponents (`bench.report.scaling`)
"""

from __future__ import annotations

from pathlib import Path

from bench.report.aggregate import Entry, Summary
from bench.report.load import Run, load_run

__all__ = ["OPTIONAL_FIGURES", "REPORT_FILES", "Entry", "Run", "Summary", "load_run", "summary_table",
           "write_report"]

#: Files `write_report` always writes into the output folder.
REPORT_FILES = (
    "index.html", "leaderboard.md", "leaderboard.tex", "leaderboard_ci.tex", "ranks.tex", "ablation.tex",
    "unseen_k.tex", "aggregate.csv",
    "error_vs_k.png", "error_vs_k.pdf", "accuracy_vs_speedup.png", "accuracy_vs_speedup.pdf",
)
#: Figure stems drawn only when the run has their data (``panels_<task>``: one per task).
OPTIONAL_FIGURES = ("reliability", "panels_<task>", "rollout_error", "energy_spectra", "scaling_<task>")


def write_report(run_dir: Path | str, out_dir: Path | str | None = None) -> Path:
    """Write every table, figure and ``index.html`` for ``run_dir``; return the folder.

    ``out_dir`` defaults to ``reports/<basename of run_dir>`` relative to the current
    directory. Raises FileNotFoundError when ``run_dir/results.csv`` is missing. A figure
    (or derived table) that fails is reported in ``index.html`` and as a warning; it
    never stops the rest.
    """
    # Imported here so `import bench.report` stays light (matplotlib only when drawing).
    from bench.report.writer import write_report as _write

    return _write(run_dir, out_dir)


def summary_table(run_dir: Path | str) -> str:
    """Plain-text table per task: method, status, rel_l2 at every k, speedup."""
    from bench.report.markdown import summary_text

    return summary_text(Summary(load_run(run_dir)))
