"""Number and cell formatting shared by the Markdown, LaTeX and terminal renderers.

Output is plain ASCII (``1.23e-05``); each renderer decorates it (LaTeX turns the
exponent into ``\\times 10^{-5}``). Three significant digits on the mean; the seed std
uses the mean's decimal places so the two line up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.catalog import metric_info
from bench.report.aggregate import MISSING, NAN, Entry, split_states
from nskernel import Budget

SIG = 3  # significant digits of a mean
ARROWS = {"lower": "↓", "higher": "↑"}
_FIXED_RANGE = (1e-3, 1e4)  # outside: scientific notation


def _decimals(x: float) -> int | None:
    """Decimal places that give SIG significant digits, or None for scientific."""
    a = abs(x)
    if a == 0:
        return 0
    if not (_FIXED_RANGE[0] <= a < _FIXED_RANGE[1]):
        return None
    return max(0, SIG - 1 - math.floor(math.log10(a)))


def _count(x: float) -> str:
    """Parameter counts: 950, 12.3k, 1.23M."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.{max(0, SIG - 1 - math.floor(math.log10(abs(x) / div)))}f}{unit}"
    return f"{x:.0f}"


def _is_count(metric: str) -> bool:
    """Whether a column counts things (parameters): formatted 12.3k, no decimals."""
    return bool(metric) and metric_info(metric).unit == "count"


def fmt_number(x: float, metric: str = "") -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if _is_count(metric):
        return _count(x)
    d = _decimals(x)
    return f"{x:.{SIG - 1}e}" if d is None else f"{x:.{d}f}"


def fmt_mean_std(mean: float, std: float, metric: str = "") -> tuple[str, str | None]:
    """``(mean, std)`` strings; std is None when there is no spread to show."""
    m = fmt_number(mean, metric)
    if math.isnan(std):
        return m, None
    if _is_count(metric):  # a model property: a spread only when seeds disagree
        return m, (_count(std) if std else None)
    d = _decimals(mean)
    if std == 0 or abs(std) <= 1e-12 * abs(mean):  # identical seeds: a float sum's round-off is no spread
        return m, "0" if d is None else f"{0:.{d}f}"
    if d is None or (std != 0 and abs(std) < 10.0 ** (-d) / 2):
        return m, f"{std:.1e}"  # a spread below the mean's last digit stays visible
    return m, f"{std:.{d}f}"


def fmt_interval(lo: float, hi: float, mean: float, metric: str = "") -> tuple[str, str]:
    """Bounds of a CI at the mean's decimals, with extra digits (up to 4) when the
    interval would otherwise print as one number."""
    d = _decimals(mean)
    if d is None or _is_count(metric):
        return f"{lo:.{SIG - 1}e}", f"{hi:.{SIG - 1}e}"
    extra = 0
    while hi > lo and extra < 4 and f"{lo:.{d + extra}f}" == f"{hi:.{d + extra}f}":
        extra += 1
    return f"{lo:.{d + extra}f}", f"{hi:.{d + extra}f}"


@dataclass(frozen=True)
class CellText:
    """What one table cell says, before markup.

    ``kind``: ``value`` (mean/std set), ``status`` (the cell's state: failed, n/a, ...),
    ``missing`` (nothing recorded). ``note`` annotates seeds that did not contribute.
    """

    kind: str
    mean: str = ""
    std: str | None = None
    note: str = ""
    label: str = ""
    ci: tuple[str, str] | None = None  # bootstrap CI bounds over samples


def cell_text(entry: Entry, metric: str) -> CellText:
    if not entry.ok:
        if entry.state == MISSING:
            return CellText("missing", label="-")
        return CellText("status", label=", ".join("NaN" if p == NAN else p for p in split_states(entry.state)))
    mean, std = fmt_mean_std(entry.mean, entry.std, metric)
    note = ", ".join(f"{n}/{entry.n_seeds} {'NaN' if s == NAN else s}" for s, n in entry.issues)
    ci = fmt_interval(*entry.ci, entry.mean, metric) if entry.ci is not None else None
    return CellText("value", mean, std, note, ci=ci)


def plain(ct: CellText, pm: str = "±", show_std: bool = True, show_note: bool = True,
          show_ci: bool = True) -> str:
    """Single-line rendering used by Markdown, HTML and the terminal:
    ``0.031 ± 0.002 [0.029, 0.034] (1/3 failed)``."""
    if ct.kind != "value":
        return ct.label
    out = ct.mean + (f" {pm} {ct.std}" if show_std and ct.std is not None else "")
    out += f" [{ct.ci[0]}, {ct.ci[1]}]" if show_ci and ct.ci is not None else ""
    return out + (f" ({ct.note})" if show_note and ct.note else "")


def arrow(direction: str) -> str:
    """↓ lower is better, ↑ higher, →x closest to x."""
    if direction.startswith("target:"):
        return "→" + direction.split(":", 1)[1]
    return ARROWS.get(direction, "")


def seed_list(seeds: Sequence[int]) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(s) for s in seeds)


def describe_budget(budget: object) -> str:
    try:
        return Budget(**budget).describe()  # type: ignore[arg-type]
    except (TypeError, ValueError):  # a run.json from another version: show it as it is
        return ", ".join(f"{k} {v}" for k, v in budget.items()) if isinstance(budget, dict) else str(budget)


def short_reason(text: str, limit: int = 160) -> str:
    """First non-empty line of an error text, truncated: tables stay readable."""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."
