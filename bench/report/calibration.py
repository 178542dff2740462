"""The "calibration across scales" table: coverage_90 and ece of every probabilistic method
at every factor k, unseen factors marked.

The leaderboard shows uncertainty metrics at the smallest k only; this table answers the
question the suite is placed to ask of a calibration learned (or fitted on held-out data,
``conformal:*``) at the training factors: does it hold at a factor never seen?
"""

from __future__ import annotations

from bench.report.aggregate import Summary
from bench.report.grid import Grid, board_grid
from bench.report.tables import Column, build_leaderboard

METRICS = ("coverage_90", "ece")
INTRO = ("Calibration of every probabilistic method at every factor k: does calibration learned at the "
         "training factors transfer to an unseen one? coverage_90: closest to 0.9 is best; ece: pooled over all "
         "test points of a cell (docs/metrics.md).")


def calibration_grid(summary: Summary, task: str) -> Grid | None:
    """Rows = the task's methods with a finite ``coverage_90`` somewhere; None when none has."""
    methods = [m for m in summary.methods
               if any(summary.entry(task, m, METRICS[0], k).ok for k in summary.ks(task, METRICS[0]))]
    if not methods:
        return None
    ks = summary.ks(task, METRICS[0])
    cols = [Column(metric, k, summary.is_unseen(task, k), per_k=True) for metric in METRICS for k in ks]
    board = build_leaderboard(summary, task, columns=cols, methods=methods)
    grid = board_grid(board, caption=f"coverage_90 and ece of {task}'s probabilistic methods at every k.")
    return Grid(f"calibration-{grid.slug.removeprefix('leaderboard-')}", task, grid.caption, grid.columns, grid.rows,
                grid.notes)


__all__ = ["INTRO", "calibration_grid"]
