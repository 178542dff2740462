"""A format-neutral table (`Grid`) for the tables beyond the per-task leaderboards:
cross-task ranks, NeuroScale ablation, unseen-k generalisation, bootstrap CIs, and the
HTML rendering of the leaderboards themselves.

A cell is a `CellText` (mean ± std [CI] or a status label, as in the leaderboards) plus
optional trailing numbers (``extra``, laid out by ``extra_fmt``: a difference
``(Δ +0.004)``, an interval ``[0.029, 0.034]``). Numbers stay plain ASCII here; each
renderer (`markdown.grid_markdown`, `latex.grid_latex`, `html.grid_html`) adds markup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bench.report.aggregate import OK
from bench.report.fmt import CellText, arrow, cell_text, fmt_interval, plain, seed_list
from bench.report.tables import Leaderboard


@dataclass(frozen=True)
class GColumn:
    """``label`` (a metric or task), ``sub`` (e.g. ``k=4``; consecutive columns with the
    same label share a group header in LaTeX), ``direction`` for the arrow (None: none)."""

    label: str
    sub: str = ""
    direction: str | None = None
    unseen: bool = False


@dataclass(frozen=True)
class GCell:
    """One cell: the value (or status label) and optional trailing numbers."""

    ct: CellText | None = None  # None: only the extra part
    bold: bool = False
    extra: tuple[str, ...] = ()
    extra_fmt: str = ""

    @property
    def is_value(self) -> bool:
        return self.ct is None or self.ct.kind == "value"


@dataclass(frozen=True)
class GRow:
    label: str
    cells: tuple[GCell, ...]


@dataclass(frozen=True)
class Grid:
    """A titled table: one row per method (or variant), one cell per column."""

    slug: str  # LaTeX label and HTML anchor
    title: str
    caption: str  # plain text
    columns: tuple[GColumn, ...]
    rows: tuple[GRow, ...]
    notes: tuple[str, ...] = ()  # plain text, one item each
    row_header: str = "method"

    def __post_init__(self) -> None:
        bad = [r.label for r in self.rows if len(r.cells) != len(self.columns)]
        if bad:
            raise ValueError(f"table {self.slug}: rows {bad} do not have {len(self.columns)} cells")


@dataclass(frozen=True)
class Section:
    """A titled group of tables in the Markdown and HTML reports."""

    anchor: str
    title: str
    intro: str = ""
    grids: Sequence[Grid] = ()
    empty: str = ""  # shown instead when there is no table
    grid_titles: bool = True  # a heading per table (off for a section of one table)


def status_cell(label: str) -> GCell:
    return GCell(CellText("status", label=label))


def extra_text(cell: GCell) -> str:
    return cell.extra_fmt.format(*cell.extra) if cell.extra else ""


def cell_plain(cell: GCell, show_ci: bool = True) -> str:
    """Single-line text of a cell (Markdown and HTML add only emphasis)."""
    main = plain(cell.ct, show_ci=show_ci) if cell.ct is not None else ""
    return " ".join(p for p in (main, extra_text(cell)) if p)


def column_plain(col: GColumn) -> str:
    parts = [col.label, col.sub, "(unseen)" if col.unseen else "", arrow(col.direction) if col.direction else ""]
    return " ".join(p for p in parts if p)


def board_notes(board: Leaderboard) -> list[str]:
    """The failure and n/a notes of a leaderboard as plain sentences."""
    out = []
    for f in board.failures:
        out.append(f"{f.method}: {f.status} ({seed_list(f.seeds)})" + (f": {f.reason}" if f.reason else ""))
    for note in board.na_notes:
        out.append(f"n/a: {', '.join(note.columns)} for {', '.join(note.methods)}: {note.reason}")
    if board.omitted:
        out.append("Not shown (no method has a value): " + ", ".join(board.omitted) + ".")
    return out


def board_columns(board: Leaderboard) -> tuple[GColumn, ...]:
    return tuple(
        GColumn(c.metric, f"k={c.k}" if c.k is not None else "", c.direction, c.unseen) for c in board.columns
    )


def board_grid(board: Leaderboard, caption: str = "") -> Grid:
    """A leaderboard as a Grid (rows whose cells did not finish show their status)."""
    rows = []
    for row in board.rows:
        if row.status != OK:
            cells = tuple(status_cell(row.status) for _ in board.columns)
        else:
            cells = tuple(
                GCell(cell_text(e, c.metric), row.best[j]) for j, (e, c) in enumerate(zip(row.entries, board.columns))
            )
        rows.append(GRow(row.label, cells))
    return Grid(f"leaderboard-{slug(board.task)}", board.task, caption, board_columns(board), tuple(rows),
                tuple(board_notes(board)))


def ci_grid(board: Leaderboard) -> Grid | None:
    """The 95% bootstrap CIs of a leaderboard's per-sample columns (None: no CI at all)."""
    keep = [j for j, _ in enumerate(board.columns) if any(r.status == OK and r.entries[j].ci for r in board.rows)]
    if not keep:
        return None
    rows = []
    for row in board.rows:
        cells = []
        for j in keep:
            e, metric = row.entries[j], board.columns[j].metric
            if row.status != OK:
                cells.append(status_cell(row.status))
            elif e.ok and e.ci is not None:
                cells.append(GCell(None, False, fmt_interval(*e.ci, e.mean, metric), "[{}, {}]"))
            elif e.ok:
                cells.append(GCell(CellText("missing", label="-")))  # a seed lacks samples
            else:
                cells.append(GCell(cell_text(e, metric)))
        rows.append(GRow(row.method, tuple(cells)))
    cols = tuple(board_columns(board)[j] for j in keep)
    caption = (f"95% percentile bootstrap confidence intervals for task {board.task} (test samples resampled "
               "within each seed, B=1000, averaged over seeds); -: some seed has no per-sample values.")
    return Grid(f"ci-{slug(board.task)}", f"{board.task} (95% CI)", caption, cols, tuple(rows))


def slug(text: str) -> str:
    """A LaTeX-label and HTML-id safe form of ``text``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
