"""LaTeX leaderboards: one booktabs ``table`` float per task, ready to ``\\input``.

Needs only ``\\usepackage{booktabs}``. All text goes through `escape`, which also folds
non-ASCII to ASCII so error messages in notes cannot break a pdflatex build.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from bench.report.aggregate import OK
from bench.report.fmt import CellText, cell_text, describe_budget, seed_list
from bench.report.grid import GCell, GColumn, Grid
from bench.report.load import Run
from bench.report.tables import Column, Leaderboard, Row

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
}
_UNICODE = {"±": "+/-", "—": "--", "–": "--", "→": "->", "←": "<-", "×": "x", "…": "...",
            "‘": "'", "’": "'", "“": '"', "”": '"', "≤": "<=", "≥": ">="}
_DAGGER = r"^{\dagger}"
_SCI = re.compile(r"^([+-]?\d+(?:\.\d+)?)e([+-])0*(\d+)$")


def escape(text: str) -> str:
    """Plain text -> LaTeX text mode (special characters escaped, ASCII only)."""
    for u, a in _UNICODE.items():
        text = text.replace(u, a)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def number(text: str) -> str:
    """``1.23e-05`` -> ``$1.23\\times10^{-5}$``, ``-1.5`` -> ``$-1.5$``, ``+13%`` ->
    ``$+13$\\%``; other strings escaped as text."""
    m = _SCI.match(text)
    if m:
        mant, sign, exp = m.groups()
        return rf"${mant}\times10^{{{'-' if sign == '-' else ''}{exp}}}$"
    # a text-mode "-" would print as a hyphen, not a minus sign
    signed = re.fullmatch(r"([+-]\d+(?:\.\d+)?)(%?)", text)
    if signed:
        return f"${signed.group(1)}$" + (r"\%" if signed.group(2) else "")
    return escape(text)


def arrow(direction: str) -> str:
    if direction == "lower":
        return r"$\downarrow$"
    if direction == "higher":
        return r"$\uparrow$"
    if direction.startswith("target:"):
        return rf"$\to {escape(direction.split(':', 1)[1])}$"
    return ""


def _k(col: Column) -> str:
    if col.k is None:
        return ""
    return rf"$k{{=}}{col.k}{_DAGGER if col.unseen else ''}$"


PARTIAL = r"$^{*}$"  # some seeds did not contribute; spelled out below the table
MAX_COLUMNS = 8  # more value columns than this: uncertainty metrics go to a second panel


def _value(ct: CellText, bold: bool) -> str:
    if ct.kind == "missing":
        return "--"
    if ct.kind == "status":
        return escape(ct.label)
    # The spread in a smaller font keeps the many columns narrow.
    body = number(ct.mean) + (rf" {{\scriptsize$\pm${number(ct.std)}}}" if ct.std is not None else "")
    if bold:
        body = rf"{{\bfseries\boldmath {body}}}"  # \boldmath: the $\pm$ and exponents too
    return body + (PARTIAL if ct.note else "")


def _cell(row: Row, j: int, col: Column) -> str:
    if row.status != OK:
        return rf"\textit{{{escape(row.status)}}}"
    return _value(cell_text(row.entries[j], col.metric), row.best[j])


def _groups(cols: Sequence[Column]) -> list[tuple[int, int]]:
    """(start, length) runs of consecutive per-k columns of one metric, else singles."""
    out: list[tuple[int, int]] = []
    for j, col in enumerate(cols):
        prev = cols[j - 1] if j else None
        if prev is not None and col.per_k and prev.per_k and prev.metric == col.metric:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((j, 1))
    return out


def _header(cols: Sequence[Column]) -> list[str]:
    top, rules = ["Method" if not any(c.k is not None for c in cols) else ""], []
    for start, n in _groups(cols):
        col = cols[start]
        label = f"{escape(col.metric)} {arrow(col.direction)}".strip()
        top.append(rf"\multicolumn{{{n}}}{{c}}{{{label}}}" if n > 1 else label)
        if n > 1:
            rules.append(rf"\cmidrule(lr){{{start + 2}-{start + n + 1}}}")
    lines = [" & ".join(top) + r" \\"]
    if any(c.k is not None for c in cols):
        lines += ["".join(rules)] if rules else []
        lines.append(" & ".join(["Method", *(_k(c) for c in cols)]) + r" \\")
    return lines


def _partial_note(board: Leaderboard) -> str | None:
    """'fno: 1/3 failed; gp: 1/3 NaN' for the rows whose values carry PARTIAL."""
    parts = []
    for row in board.rows:
        if row.status != OK:
            continue
        notes = dict.fromkeys(ct.note for e, c in zip(row.entries, board.columns)
                              if (ct := cell_text(e, c.metric)).note)
        if notes:
            parts.append(f"{escape(row.method)}: {escape('; '.join(notes))}")
    return (PARTIAL + " mean over the seeds with a value -- " + ", ".join(parts)) if parts else None


def _notes(board: Leaderboard) -> list[str]:
    items = [n for n in [_partial_note(board)] if n]
    for f in board.failures:
        why = f": {escape(f.reason)}" if f.reason else ""
        items.append(rf"\textit{{{escape(f.status)}}} -- {escape(f.method)} ({seed_list(f.seeds)}){why}")
    for note in board.na_notes:
        items.append(
            rf"\textit{{n/a}} -- {escape(', '.join(note.columns))} for "
            rf"{escape(', '.join(note.methods))}: {escape(note.reason)}"
        )
    if board.omitted:
        items.append(r"Not shown (no method has a value): " + escape(", ".join(board.omitted)) + ".")
    return items


# A wide table is scaled to \linewidth when graphicx is loaded (\resizebox defined);
# without graphicx it keeps its natural width, so booktabs stays the only requirement.
FIT_BOX = (
    r"\ifdim\wd0>\linewidth\ifdefined\resizebox\resizebox{\linewidth}{!}{\usebox0}"
    r"\else\usebox0\fi\else\usebox0\fi"
)


PANELS = {"accuracy": "Accuracy and cost", "physics": "Accuracy and cost", "cost": "Accuracy and cost",
          "uncertainty": "Uncertainty", "task": "Task statistics", "rollout": "Task statistics"}


def _panel_of(col: Column) -> str:
    return PANELS[col.group]


def _panels(cols: Sequence[Column]) -> list[tuple[str, list[int]]]:
    """Column indices per panel: one panel when narrow enough, else (a) accuracy and
    cost, (b) uncertainty, (c) task statistics, each present only when non-empty."""
    if len(cols) <= MAX_COLUMNS:
        return [("", list(range(len(cols))))]
    groups: dict[str, list[int]] = {}
    for name in ("Accuracy and cost", "Uncertainty", "Task statistics"):
        groups[name] = [j for j, c in enumerate(cols) if _panel_of(c) == name]
    panels = [(name, idx) for name, idx in groups.items() if idx]
    if len(panels) == 1:
        return [("", panels[0][1])]
    return [(f"({chr(ord('a') + i)}) {name}", idx) for i, (name, idx) in enumerate(panels)]


def _tabular(board: Leaderboard, idx: Sequence[int]) -> list[str]:
    cols = [board.columns[j] for j in idx]
    lines = [
        # Typeset into a box first so that FIT_BOX can shrink it to the line width.
        r"\sbox0{%", r"\begin{tabular}{l" + "r" * len(cols) + "}", r"\toprule", *_header(cols), r"\midrule",
    ]
    for row in board.rows:
        cells = [_cell(row, j, board.columns[j]) for j in idx]
        lines.append(" & ".join([escape(row.label), *cells]) + r" \\")
    return lines + [r"\bottomrule", r"\end{tabular}}%", FIT_BOX]


def board_latex(board: Leaderboard, budget: str = "") -> str:
    label = re.sub(r"[^a-z0-9]+", "-", board.task.lower()).strip("-") or "task"
    seeds = f"{board.n_seeds} seed{'s' if board.n_seeds != 1 else ''}"
    caption = (
        rf"Leaderboard for task \texttt{{{escape(board.task)}}}: mean $\pm$ sample std over "
        rf"{seeds}; best per column in bold; $\dagger$: factor not used in training."
        + (rf" Budget: {escape(budget)}; the model scored is the best epoch on validation." if budget else "")
    )
    lines = [
        r"\begin{table}[htbp]", r"\centering", r"\footnotesize", r"\setlength{\tabcolsep}{3pt}",
        rf"\caption{{{caption}}}", rf"\label{{tab:leaderboard-{label}}}",
    ]
    for i, (title, idx) in enumerate(_panels(board.columns)):
        if i:
            lines += ["", r"\medskip"]
        if title:
            lines.append(rf"{{\small\textit{{{title}}}}}\par\smallskip")
        lines += _tabular(board, idx)
    notes = _notes(board)
    if notes:
        lines += ["", r"\smallskip", r"{\raggedright"]
        lines += [n + r"\par" for n in notes]
        lines.append("}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def render_latex(boards: Sequence[Leaderboard], run: Run) -> str:
    head = [
        f"% NeuroScale Bench leaderboard for run {escape(run.name)}, generated from results.csv;",
        "% do not edit by hand. Needs \\usepackage{booktabs}; with \\usepackage{graphicx}",
        "% a table wider than the line is scaled to fit.",
        "",
    ]
    budgets = run.meta.get("budgets") or {}
    return "\n".join(head) + "\n\n".join(
        board_latex(b, describe_budget(budgets[b.task]) if b.task in budgets else "") for b in boards) + "\n"


# ---- generic tables (ranks, ablation, unseen-k, CIs) ------------------------------------
_MATH = {"Δ": r"$\Delta$", "±": r"$\pm$", "σ": r"$\sigma$"}
_MATH_RE = re.compile("([" + "".join(_MATH) + "])")


def _text(text: str) -> str:
    """`escape`, keeping the few symbols the generated tables use (Δ, ±, σ) as math."""
    return "".join(_MATH.get(part) or escape(part) for part in _MATH_RE.split(text))


def _extra(cell: GCell) -> str:
    """``extra_fmt`` with each ``{}`` replaced by a typeset number, the text escaped."""
    parts = cell.extra_fmt.split("{}")
    out = _text(parts[0])
    for num, rest in zip(cell.extra, parts[1:]):
        out += number(num) + _text(rest)
    return out


def _grid_cell(cell: GCell) -> str:
    if cell.ct is not None and cell.ct.kind == "status":
        return rf"\textit{{{escape(cell.ct.label)}}}"
    # In LaTeX a cell shows mean ± std only: CIs have their own tables (leaderboard_ci.tex).
    main = _value(cell.ct, cell.bold) if cell.ct is not None else ""
    if not cell.extra:
        return main
    extra = _extra(cell)
    if cell.ct is None:
        return rf"{{\bfseries\boldmath {extra}}}" if cell.bold else extra
    return main + rf" {{\scriptsize {extra}}}"


def _grid_header(cols: Sequence[GColumn], row_header: str) -> list[str]:
    def top(c: GColumn) -> str:
        return f"{escape(c.label)} {arrow(c.direction) if c.direction else ''}".strip()

    if not any(c.sub for c in cols):
        return [" & ".join([escape(row_header), *(top(c) for c in cols)]) + r" \\"]
    cells, rules, j = [""], [], 0
    while j < len(cols):  # merge runs of columns with the same label into one group
        n = 1
        while j + n < len(cols) and (cols[j + n].label, cols[j + n].direction) == (cols[j].label, cols[j].direction):
            n += 1
        cells.append(rf"\multicolumn{{{n}}}{{c}}{{{top(cols[j])}}}" if n > 1 else top(cols[j]))
        if n > 1:
            rules.append(rf"\cmidrule(lr){{{j + 2}-{j + n + 1}}}")
        j += n
    subs = [escape(c.sub) + (f"${_DAGGER}$" if c.unseen else "") for c in cols]
    return [" & ".join(cells) + r" \\", *(["".join(rules)] if rules else []),
            " & ".join([escape(row_header), *subs]) + r" \\"]


def grid_latex(grid: Grid) -> str:
    """One booktabs ``table`` float for a `Grid` (caption, label tab:<slug>, notes)."""
    lines = [
        r"\begin{table}[htbp]", r"\centering", r"\footnotesize", r"\setlength{\tabcolsep}{3pt}",
        rf"\caption{{{_text(grid.caption or grid.title)}}}", rf"\label{{tab:{grid.slug}}}",
        r"\sbox0{%", r"\begin{tabular}{l" + "r" * len(grid.columns) + "}", r"\toprule",
        *_grid_header(grid.columns, grid.row_header), r"\midrule",
    ]
    for row in grid.rows:
        lines.append(" & ".join([escape(row.label), *(_grid_cell(c) for c in row.cells)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}%", FIT_BOX]
    partial = [f"{escape(r.label)}: {escape('; '.join(notes))}" for r in grid.rows
               if (notes := dict.fromkeys(c.ct.note for c in r.cells if c.ct is not None and c.ct.note))]
    notes = [PARTIAL + " mean over the seeds with a value -- " + ", ".join(partial)] if partial else []
    notes += [_text(n) for n in grid.notes]
    if notes:
        lines += ["", r"\smallskip", r"{\raggedright"] + [n + r"\par" for n in notes] + ["}"]
    lines.append(r"\end{table}")
    return "\n".join(lines)


def render_grids_latex(grids: Sequence[Grid], what: str, run: Run) -> str:
    head = [
        f"% NeuroScale Bench {what} for run {escape(run.name)}, generated from the run's records;",
        "% do not edit by hand. Needs \\usepackage{booktabs}; with \\usepackage{graphicx}",
        "% a table wider than the line is scaled to fit.",
        "",
    ]
    body = "\n\n".join(grid_latex(g) for g in grids) if grids else f"% (no {what} for this run)"
    return "\n".join(head) + body + "\n"
