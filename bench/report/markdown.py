"""Markdown leaderboard (GitHub-flavoured tables) and the plain-text terminal summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bench.metrics import CONVERGENCE_TOL, FLUCTUATION, PRIMARY, SPEEDUP
from bench.report.aggregate import OK, Summary
from bench.report.fmt import arrow, cell_text, describe_budget, plain, seed_list
from bench.report.grid import Grid, Section, cell_plain, column_plain
from bench.report.load import Run
from bench.report.tables import Column, Leaderboard, Row, build_leaderboard


def _esc(text: str) -> str:
    """Escape what would break a table cell or turn into emphasis."""
    for ch in ("\\", "|", "*", "`"):
        text = text.replace(ch, "\\" + ch)
    return text


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def header(col: Column) -> str:
    where = ""
    if col.k is not None:
        where = f" k={col.k}" if col.per_k else f" (k={col.k})"
    unseen = " (unseen)" if col.unseen else ""
    return f"{col.metric}{where}{unseen} {arrow(col.direction)}".strip()


def _cell(row: Row, j: int, col: Column) -> str:
    if row.status != OK:
        return row.status
    text = _esc(plain(cell_text(row.entries[j], col.metric)))
    return f"**{text}**" if row.best[j] else text


def provenance_lines(run: Run) -> list[str]:
    """Bullet lines describing where the numbers come from (run.json)."""
    meta, prov = run.meta, run.meta.get("provenance", {}) or {}

    def lst(xs: object) -> str:
        return ", ".join(str(x) for x in xs) if isinstance(xs, list) else str(xs)

    lines = []
    if meta.get("command"):
        lines.append(f"- command: {_code(str(meta['command']))}")
    lines.append(
        f"- size: {meta.get('size', '?')}; seeds: {lst(run.seeds)}; "
        f"k_train: {lst(meta.get('k_train', '?'))}; k_test: {lst(meta.get('k_test', '?'))}"
    )
    budgets = meta.get("budgets")
    if isinstance(budgets, dict) and budgets:
        texts: dict[str, list[str]] = {}
        for task, b in budgets.items():
            texts.setdefault(describe_budget(b), []).append(task)
        per = "; ".join(text if len(texts) == 1 else f"{', '.join(tasks)}: {text}" for text, tasks in texts.items())
        lines.append(f"- budget mode and training budget per neural method: {per}; the model scored is the best "
                     "epoch on the validation split")
    machine = [f"{key}: {prov[key]}" for key in ("git_commit", "device", "cpu", "threads", "hostname") if key in prov]
    if machine:
        lines.append("- " + "; ".join(machine))
    versions = prov.get("versions") or {}
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if meta.get("started") or meta.get("finished"):
        lines.append(f"- started {meta.get('started', '?')}, finished {meta.get('finished', '?')}")
    return lines


LEGEND = (
    "Each value is the mean ± sample std (ddof=1) over seeds of the per-seed mean over test "
    "samples (just the mean when one seed contributed); [lo, hi]: 95% percentile bootstrap "
    "confidence interval over test samples (resampled within each seed, B=1000, averaged over "
    "seeds), shown where the records hold per-sample values. **Bold**: best per column "
    "(↓ lower is better, ↑ higher, →0.9 closest to 0.9). (unseen): coarse-graining factor not "
    "used in training. (1/3 failed): seeds that did not contribute to the mean. "
    "n/a: does not apply; -: not recorded; NaN: recorded but not a finite number. "
    f"(not converged): the validation error of some seed still fell by more than {CONVERGENCE_TOL:.0%} "
    "over the last fifth of its training; truncated: training stopped by the wall-clock safety cap "
    "(its numbers are not shown)."
)


def board_markdown(board: Leaderboard) -> str:
    cols = board.columns
    lines = [f"## {board.task}", ""]
    lines.append("| method | " + " | ".join(header(c) for c in cols) + " |")
    lines.append("|:--|" + "".join("--:|" for _ in cols))
    for row in board.rows:
        cells = [_cell(row, j, c) for j, c in enumerate(cols)]
        lines.append(f"| {_esc(row.label)} | " + " | ".join(cells) + " |")
    lines.append("")
    if board.failures:
        lines += ["Cells that did not finish or do not apply:", ""]
        for f in board.failures:
            why = f": {_code(f.reason)}" if f.reason else ""
            lines.append(f"- {_esc(f.method)}: **{f.status}** ({seed_list(f.seeds)}){why}")
        lines.append("")
    if board.na_notes:
        lines += ["Not applicable (n/a):", ""]
        for note in board.na_notes:
            lines.append(
                f"- {_esc(', '.join(note.columns))} for {_esc(', '.join(note.methods))}: {_code(note.reason)}"
            )
        lines.append("")
    if board.omitted:
        lines += [f"Not shown (no method has a value): {_esc(', '.join(board.omitted))}.", ""]
    return "\n".join(lines)


def render_markdown(boards: Sequence[Leaderboard], run: Run, sections: Sequence[str] = ()) -> str:
    """The leaderboards, then extra ``## `` sections (cross-task ranks, ablation, ...)."""
    parts = [f"# Leaderboard: {run.name}", "", *provenance_lines(run), "", LEGEND, ""]
    parts += [board_markdown(b) for b in boards]
    if not boards:
        parts.append("_No results recorded._\n")
    parts += list(sections)
    return "\n".join(parts)


# ---- terminal summary -----------------------------------------------------------------
def align(table: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Fixed-width columns, two spaces apart."""
    widths = [max(len(r[j]) for r in table) for j in range(len(table[0]))]
    lines = ("  ".join(c.rjust(w) if rj else c.ljust(w) for c, w, rj in zip(r, widths, right)) for r in table)
    return "\n".join(ln.rstrip() for ln in lines)


def _status_text(summary: Summary, task: str, row: Row) -> str:
    cells = summary.cells(task, row.method)
    if row.status != OK:
        return row.status
    bad = Counter(c.status for c in cells if c.status != OK)
    return "ok" + (" (" + ", ".join(f"{n}/{len(cells)} {s}" for s, n in bad.items()) + ")" if bad else "")


def summary_text(summary: Summary) -> str:
    """Per task: method, status, the fluctuation error (time-dependent tasks) and rel_l2
    at every k, speedup (means only)."""
    blocks = []
    for task in summary.tasks:
        ks = summary.ks(task, PRIMARY) or summary.run.k_test
        lead = [FLUCTUATION, PRIMARY] if summary.has_finite(task, FLUCTUATION) else [PRIMARY]
        cols = [Column(m, k, summary.is_unseen(task, k), per_k=True) for m in lead for k in ks]
        if summary.has_finite(task, SPEEDUP):
            k = summary.smallest_k(task, SPEEDUP)
            cols.append(Column(SPEEDUP, k, summary.is_unseen(task, k)))
        board = build_leaderboard(summary, task, columns=cols)
        head = ["method", "status"] + [
            f"{c.metric} k={c.k}{'*' if c.unseen else ''}" if c.k is not None else c.metric for c in cols
        ]
        table = [head]
        for row in board.rows:
            vals = [
                plain(cell_text(e, c.metric), show_std=False, show_note=False, show_ci=False)
                if row.status == OK else "-"
                for e, c in zip(row.entries, cols)
            ]
            table.append([row.method, _status_text(summary, task, row), *vals])
        note = "  (* unseen factor)" if any(c.unseen for c in cols) else ""
        blocks.append(f"{task}{note}\n" + align(table, [False, False] + [True] * len(cols)))
    return "\n\n".join(blocks) if blocks else "(no results)"


# ---- generic tables -------------------------------------------------------------------
def grid_markdown(grid: Grid, level: int | None = 3) -> str:
    """A `Grid` as a GitHub table under a heading (none if ``level`` is None), its
    caption above, notes below."""
    lines = [f"{'#' * level} {_esc(grid.title)}", ""] if level else []
    if grid.caption:
        lines += [_esc(grid.caption), ""]
    lines.append(f"| {_esc(grid.row_header)} | " + " | ".join(_esc(column_plain(c)) for c in grid.columns) + " |")
    lines.append("|:--|" + "".join("--:|" for _ in grid.columns))
    for row in grid.rows:
        cells = [(f"**{t}**" if c.bold else t) for c in row.cells for t in [_esc(cell_plain(c))]]
        lines.append(f"| {_esc(row.label)} | " + " | ".join(cells) + " |")
    lines.append("")
    if grid.notes:
        lines += [f"- {_esc(n)}" for n in grid.notes] + [""]
    return "\n".join(lines)


def section_markdown(s: Section) -> str:
    """A ``## title`` section holding its grids, or the reason it is empty."""
    level = 3 if s.grid_titles else None
    body = [grid_markdown(g, level) for g in s.grids] if s.grids else [f"_{_esc(s.empty)}_", ""]
    return "\n".join([f"## {_esc(s.title)}", "", _esc(s.intro), "", *body])
