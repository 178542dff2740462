"""Reports from a run directory: leaderboards (Markdown + LaTeX), figures, summaries.

Every number comes from ``RUN_DIR/results.csv`` (seed aggregation in `aggregate`);
failed, diverged, timed-out and n/a cells stay visible in every table and figure.

Public API::

    write_report(run_dir, out_dir=None) -> Path   # reports/<run name>/ by default
    summary_table(run_dir) -> str                 # compact per-task text for the terminal
"""

from __future__ import annotations

from pathlib import Path

from bench.report.aggregate import Entry, Summary
from bench.report.load import Run, load_run

__all__ = ["REPORT_FILES", "Entry", "Run", "Summary", "load_run", "summary_table", "write_report"]

#: Files `write_report` writes into the output folder.
REPORT_FILES = (
    "leaderboard.md", "leaderboard.tex", "aggregate.csv",
    "error_vs_k.png", "error_vs_k.pdf", "accuracy_vs_speedup.png", "accuracy_vs_speedup.pdf",
)


def write_report(run_dir: Path | str, out_dir: Path | str | None = None) -> Path:
    """Write leaderboards, the seed-aggregated table and figures for ``run_dir``.

    ``out_dir`` defaults to ``reports/<basename of run_dir>`` relative to the current
    directory. Returns the output folder. Raises FileNotFoundError when
    ``run_dir/results.csv`` is missing.
    """
    # Imported here so `import bench.report` stays light (matplotlib only when drawing).
    from bench.report.figures import write_figures
    from bench.report.latex import render_latex
    from bench.report.markdown import render_markdown
    from bench.report.tables import build_leaderboards

    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path("reports") / run.name
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary(run)
    boards = build_leaderboards(summary)
    (out / "leaderboard.md").write_text(render_markdown(boards, run), encoding="utf-8")
    (out / "leaderboard.tex").write_text(render_latex(boards, run), encoding="ascii")
    summary.to_frame().to_csv(out / "aggregate.csv", index=False)
    write_figures(summary, out)
    return out


def summary_table(run_dir: Path | str) -> str:
    """Plain-text table per task: method, status, rel_l2 at every k, speedup."""
    from bench.report.markdown import summary_text

    return summary_text(Summary(load_run(run_dir)))
