"""``index.html``: one self-contained page with every table, figure and note of a report
and the run's provenance. Inline CSS, no script, no external resource; figures are the
PNGs next to it (relative links), each with a link to its PDF. All text goes through
`html.escape`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.report.fmt import describe_budget
from bench.report.grid import GCell, Grid, Section, cell_plain, column_plain
from bench.report.load import Run

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:80rem;
padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0 .4rem;font-size:.85rem}
p.cap{font-size:.85rem;color:#444;margin:.3rem 0;max-width:60rem}
th,td{padding:.2rem .55rem;border-bottom:1px solid #e2e2e2;white-space:nowrap}
th{background:#f4f4f4;text-align:center}td{text-align:right;font-variant-numeric:tabular-nums}
td.row{text-align:left;font-family:ui-monospace,monospace}td.status{color:#a33;font-style:italic}
tbody tr:nth-child(even){background:#fafafa}.wrap{overflow-x:auto}
ul.notes{font-size:.85rem;color:#444}.muted{color:#666;font-size:.9rem}
figure{margin:1.2rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#444;max-width:60rem}.error{color:#a00}
dl.prov{display:grid;grid-template-columns:max-content auto;gap:.15rem 1rem;font-size:.9rem}
dl.prov dt{font-weight:600}dl.prov dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
nav ul{columns:2;font-size:.9rem}code{background:#f4f4f4;padding:0 .2rem}
"""


@dataclass(frozen=True)
class FigureEntry:
    """One figure as the page shows it: written files, or why it is missing."""

    stem: str
    title: str
    caption: str
    png: str | None = None  # file name relative to the page
    pdf: str | None = None
    skipped: str | None = None  # no data for it (not an error)
    error: str | None = None  # drawing it failed


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _cell(cell: GCell) -> str:
    text = esc(cell_plain(cell))
    body = f"<strong>{text}</strong>" if cell.bold else text
    return f"<td>{body}</td>" if cell.is_value else f'<td class="status">{body}</td>'


def grid_html(grid: Grid) -> str:
    """A `Grid` as an HTML table (caption above, notes below), scrollable when wide."""
    head = "".join(f"<th>{esc(column_plain(c))}</th>" for c in grid.columns)
    rows = "".join(
        f'<tr><td class="row">{esc(r.label)}</td>' + "".join(_cell(c) for c in r.cells) + "</tr>" for r in grid.rows
    )
    out = [
        f'<p class="cap">{esc(grid.caption)}</p>' if grid.caption else "",
        f'<div class="wrap" id="{esc(grid.slug)}"><table>',
        f"<thead><tr><th>{esc(grid.row_header)}</th>{head}</tr></thead><tbody>{rows}</tbody></table></div>",
    ]
    if grid.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in grid.notes) + "</ul>")
    return "".join(out)


def provenance_html(run: Run) -> str:
    meta, prov = run.meta, run.meta.get("provenance") or {}

    def lst(x: Any) -> str:
        return ", ".join(str(v) for v in x) if isinstance(x, list) else str(x)

    items: list[tuple[str, Any]] = [
        ("command", meta.get("command", "?")), ("run directory", run.path), ("size", meta.get("size", "?")),
        ("tasks", lst(run.tasks)), ("methods", lst(run.methods)), ("seeds", lst(run.seeds)),
        ("k_train", lst(meta.get("k_train", "?"))), ("k_test", lst(meta.get("k_test", "?"))),
    ]
    for task, budget in (meta.get("budgets") or {}).items():
        items.append((f"budget ({task})", describe_budget(budget) + "; the best epoch on validation is scored"))
    for key in ("git_commit", "hostname", "platform", "cpu", "gpu", "device", "threads"):
        if prov.get(key) is not None:
            items.append((key.replace("_", " "), prov[key]))
    versions = prov.get("versions") or {}
    if versions:
        items.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    for key in ("started", "finished", "wall_s"):
        if meta.get(key) is not None:
            items.append((key, f"{meta[key]:.0f} s" if key == "wall_s" else meta[key]))
    return '<dl class="prov">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"


def figure_html(fig: FigureEntry) -> str:
    head = f'<h3 id="fig-{esc(fig.stem)}">{esc(fig.title)}</h3>'
    if fig.error:
        return head + f'<p class="error">Figure failed: <code>{esc(fig.error)}</code></p>'
    if fig.skipped or not fig.png:
        return head + f'<p class="muted">Not drawn: {esc(fig.skipped or "no image")}.</p>'
    pdf = f' (<a href="{esc(fig.pdf)}">PDF</a>)' if fig.pdf else ""
    return (head + f'<figure><img src="{esc(fig.png)}" alt="{esc(fig.title)}" loading="lazy">'
            f"<figcaption>{esc(fig.caption)}{pdf}</figcaption></figure>")


def section_html(s: Section, raw_html: str = "") -> str:
    """A section; ``raw_html`` (already escaped: figures) goes after its tables."""
    body = [f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>']
    if s.intro:
        body.append(f"<p>{esc(s.intro)}</p>")
    for g in s.grids:
        body.append((f"<h3>{esc(g.title)}</h3>" if s.grid_titles else "") + grid_html(g))
    if not s.grids and s.empty:
        body.append(f'<p class="muted">{esc(s.empty)}</p>')
    body.append(raw_html + "</section>")
    return "".join(body)


def render_html(run: Run, sections: Sequence[Section], figures: Sequence[FigureEntry], files: Sequence[str],
                problems: Sequence[str]) -> str:
    """The whole page: provenance, the table sections, the figures. ``files``: other
    report files to link; ``problems``: report-level errors (a figure that failed) listed
    at the top so they are not missed."""
    figs = Section("figures", "Figures")
    nav = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in [*sections, figs])
    warn = ""
    if problems:
        warn = ('<div class="error"><p>Parts of this report could not be produced:</p><ul>'
                + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul></div>")
    links = " · ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in files)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>NeuroScale Bench report: {esc(run.name)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        f"<h1>NeuroScale Bench report: {esc(run.name)}</h1>", warn,
        f'<section id="provenance"><h2>Provenance</h2>{provenance_html(run)}</section>',
        f"<nav><h2>Contents</h2><ul>{nav}</ul></nav>",
        *(section_html(s) for s in sections),
        section_html(figs, "".join(figure_html(f) for f in figures)),
        f'<footer class="muted"><p>Files: {links}</p><p>Every number on this page comes from the run\'s '
        "records (results.csv and records/*.json); nothing is typed by hand.</p></footer>",
        "</body>", "</html>", "",
    ])
