"""Report writer: leaderboards (Markdown, LaTeX), figures and the terminal summary,
on a synthetic run directory written in the runner's results.csv contract."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.report import REPORT_FILES, Summary, load_run, summary_table, write_report
from bench.report.figures import method_styles, pareto_front, plot_accuracy_vs_speedup, plot_error_vs_k
from bench.report.fmt import fmt_mean_std, fmt_number
from bench.report.latex import escape
from bench.report.tables import best_mask, build_leaderboard

FIELDS = ["task", "method", "seed", "size", "k", "unseen", "metric", "value", "std", "n", "status", "reason"]
K_TRAIN, K_TEST = [4, 8], [4, 8, 16]
PROB = ("nll", "ece", "crps", "coverage_90")
DET_REASON = "deterministic method: no predictive variance"
FAIL_REASON = "RuntimeError: out of memory | 50% of *budget* used_x\nTraceback line 2"


class Rows:
    """Builds results.csv rows the way the runner writes them."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def metric(self, task, method, seed, metric, value, k=None, status="ok", reason=""):
        self.rows.append({
            "task": task, "method": method, "seed": seed, "size": "smoke",
            "k": "" if k is None else k, "unseen": "" if k is None else str(k not in K_TRAIN),
            "metric": metric, "value": "" if value is None else repr(float(value)),
            "std": "" if k is None or value is None else 0.001, "n": 8, "status": status, "reason": reason,
        })

    def not_ok(self, task, method, seed, status, reason):
        self.rows.append({
            "task": task, "method": method, "seed": seed, "size": "smoke", "k": "", "unseen": "",
            "metric": "status", "value": "", "std": "", "n": "", "status": status, "reason": reason,
        })

    def cell(self, task, method, seed, rel, speedup, train_s, n_params, prob=None, extra=None, na_k=()):
        for k, v in rel.items():
            if k in na_k:
                self.metric(task, method, seed, "rel_l2", None, k, "n/a", "cannot produce an unseen factor")
            else:
                self.metric(task, method, seed, "rel_l2", v, k)
        for name, (v, k) in (extra or {}).items():  # a str value is an n/a reason
            if isinstance(v, str):
                self.metric(task, method, seed, name, None, k, "n/a", v)
            else:
                self.metric(task, method, seed, name, v, k)
        for name in PROB:
            if prob is None:
                self.metric(task, method, seed, name, None, 4, "n/a", DET_REASON)
            else:
                self.metric(task, method, seed, name, prob[name], 4)
        self.metric(task, method, seed, "speedup", speedup, 4)
        self.metric(task, method, seed, "train_s", train_s)
        self.metric(task, method, seed, "n_params", n_params)

    def write(self, run_dir: Path, methods, tasks, seeds=(0, 1)) -> Path:
        run_dir.mkdir(parents=True)
        with open(run_dir / "results.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=FIELDS)
            w.writeheader()
            w.writerows(self.rows)
        meta = {
            "name": run_dir.name, "command": "python -m bench run --size smoke", "size": "smoke",
            "tasks": list(tasks), "methods": list(methods), "seeds": list(seeds),
            "k_train": K_TRAIN, "k_test": K_TEST,
            "provenance": {"git_commit": "abc1234", "versions": {"torch": "2.13.0"}, "device": "cpu",
                           "cpu": "test cpu", "threads": 2, "hostname": "host"},
            "started": "2025-01-01T00:00:00", "finished": "2025-01-01T00:10:00",
        }
        (run_dir / "run.json").write_text(json.dumps(meta))
        return run_dir


# Known seed pair for neuroscale rel_l2 at k=4: mean 0.012, sample std 0.0028284.
NS_K4 = (0.010, 0.014)


def make_run(root: Path) -> Path:
    """2 tasks x 3 methods x 2 seeds.

    darcy: fno seed 1 failed (partial), neuroscale is probabilistic, conservation recorded.
    burgers: coarse_fv does not apply (n/a cell), fno diverged on both seeds, neuroscale
    cannot produce the unseen k=16 (metric-level n/a), conservation n/a for all methods.
    """
    r = Rows()
    prob = {"nll": -1.5, "ece": 0.04, "crps": 0.006, "coverage_90": 0.87}
    for seed in (0, 1):
        # darcy: lowest rel_l2 is neuroscale (k=4), highest speedup is fno.
        r.cell("darcy", "coarse_fv", seed, {4: 0.050 + 0.002 * seed, 8: 0.080, 16: 0.12}, 50.0, 0.0, 0,
               extra={"conservation": (1e-10, 4)})
        if seed == 0:
            r.cell("darcy", "fno", seed, {4: 0.020, 8: 0.030, 16: 0.090}, 200.0, 30.0, 123456,
                   extra={"conservation": (0.003, 4)})
        else:
            r.not_ok("darcy", "fno", seed, "failed", FAIL_REASON)
        r.cell("darcy", "neuroscale:gamma=0", seed, {4: NS_K4[seed], 8: 0.025, 16: 0.07}, 20.0 + seed, 60.0,
               2_000_000, prob=prob, extra={"conservation": (0.002, 4)})
        # burgers
        r.not_ok("burgers", "coarse_fv", seed, "n/a", "task burgers has no coarse solver")
        r.not_ok("burgers", "fno", seed, "diverged", "loss became NaN at epoch 3")
        r.cell("burgers", "neuroscale:gamma=0", seed, {4: 0.03, 8: 0.05, 16: None}, 10.0, 40.0, 2_000_000,
               prob=prob, na_k=(16,), extra={
                   "conservation": ("task burgers defines no conservation functional", 4),
                   "spectrum_err": (0.1 + seed * 0.02, 4)})
    methods = ["coarse_fv", "fno", "neuroscale:gamma=0"]
    return r.write(root / "run_synth", methods, ["darcy", "burgers"])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, Path]:
    """(run_dir, report_dir) with the report written to the default location."""
    root = tmp_path_factory.mktemp("rep")
    run_dir = make_run(root)
    cwd = os.getcwd()
    os.chdir(root)  # default out dir is relative to the working directory
    try:
        out = write_report(run_dir)
    finally:
        os.chdir(cwd)
    return run_dir, root / out


def md_table(md: str, task: str) -> tuple[list[str], dict[str, list[str]]]:
    """Header and {method: cells} of the Markdown table under '## task'."""
    section = md.split(f"## {task}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]

    def split(ln: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]]

    header = split(lines[0])[1:]
    rows = {split(ln)[0]: split(ln)[1:] for ln in lines[2:]}
    return header, rows


def col(header: list[str], prefix: str) -> int:
    hits = [i for i, h in enumerate(header) if h.startswith(prefix)]
    assert len(hits) == 1, (prefix, header)
    return hits[0]


def bold_methods(header, rows, prefix) -> list[str]:
    j = col(header, prefix)
    return [m for m, cells in rows.items() if cells[j].startswith("**")]


# ---- outputs -----------------------------------------------------------------------
def test_files_written_to_default_dir(report):
    run_dir, out = report
    assert out == run_dir.parent / "reports" / "run_synth"
    for name in REPORT_FILES:
        assert (out / name).stat().st_size > 0, name
    for stem in ("error_vs_k", "accuracy_vs_speedup"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (out / f"{stem}.png").stat().st_size > 10_000  # drawn, not a blank canvas


def test_failed_and_na_cells_visible_in_every_leaderboard(report):
    _, out = report
    md = (out / "leaderboard.md").read_text()
    header, darcy = md_table(md, "darcy")
    assert set(darcy) == {"coarse_fv", "fno", "neuroscale:gamma=0"}
    assert darcy["fno"][col(header, "rel_l2 k=4")] == "0.0200 (1/2 failed)"
    header_b, burgers = md_table(md, "burgers")
    assert set(burgers) == {"coarse_fv", "fno", "neuroscale:gamma=0"}
    assert burgers["fno"] == ["diverged"] * len(header_b)
    assert burgers["coarse_fv"] == ["n/a"] * len(header_b)
    # reasons listed below the tables, first line only, escaped
    assert "**failed** (seed 1): `RuntimeError: out of memory | 50% of *budget* used_x`" in md
    assert "Traceback line 2" not in md
    assert "**diverged** (seeds 0, 1): `loss became NaN at epoch 3`" in md
    assert "task burgers has no coarse solver" in md
    tex = (out / "leaderboard.tex").read_text()
    fno_rows = [ln for ln in tex.split(r"\texttt{burgers}")[1].splitlines() if ln.startswith("fno &")]
    assert len(fno_rows) == 3  # one row per panel: accuracy and cost, uncertainty, task statistics
    assert sum(r.count(r"\textit{diverged}") for r in fno_rows) == len(header_b)
    assert r"0.0200$^{*}$" in tex and r"$^{*}$ mean over the seeds with a value -- fno: 1/2 failed" in tex


def test_metric_level_na_and_omitted_columns(report):
    _, out = report
    md = (out / "leaderboard.md").read_text()
    header, darcy = md_table(md, "darcy")
    for name in PROB:  # probabilistic columns exist; deterministic methods show n/a
        j = col(header, f"{name} (k=4)")
        assert darcy["coarse_fv"][j] == "n/a" and darcy["fno"][j] == "n/a"
    assert DET_REASON in md
    header_b, burgers = md_table(md, "burgers")
    assert burgers["neuroscale:gamma=0"][col(header_b, "rel_l2 k=16")] == "n/a"
    assert not any(h.startswith("conservation") for h in header_b)
    assert "Not shown (no method has a value): conservation." in md
    assert "task burgers defines no conservation functional" in md
    assert burgers["neuroscale:gamma=0"][col(header_b, "spectrum_err (k=4)")] == "0.110 ± 0.014"


def test_bold_is_direction_aware(report):
    _, out = report
    md = (out / "leaderboard.md").read_text()
    header, darcy = md_table(md, "darcy")
    assert bold_methods(header, darcy, "rel_l2 k=4") == ["neuroscale:gamma=0"]  # lower is better
    assert bold_methods(header, darcy, "speedup") == ["fno"]  # higher is better
    assert bold_methods(header, darcy, "conservation") == ["coarse_fv"]
    assert bold_methods(header, darcy, "train_s") == ["coarse_fv"]
    assert darcy["coarse_fv"][col(header, "n_params")] == "**0**"  # no "± 0" on a count
    assert bold_methods(header, darcy, "coverage_90") == []  # one probabilistic method: nothing to compare
    tex = (out / "leaderboard.tex").read_text()
    fno_row = next(ln for ln in tex.splitlines() if ln.startswith("fno &"))
    assert fno_row.count(r"\bfseries") == 1 and r"{\bfseries\boldmath 200}" in fno_row


def test_best_mask_directions():
    vals = [0.80, 0.88, 0.97, math.nan]
    assert best_mask(vals, "lower") == [True, False, False, False]
    assert best_mask(vals, "higher") == [False, False, True, False]
    assert best_mask(vals, "target:0.9") == [False, True, False, False]
    assert best_mask([1.0, 1.0, 2.0], "lower") == [True, True, False]  # ties all bold
    assert best_mask([1.0, math.nan], "lower") == [False, False]
    with pytest.raises(ValueError):
        best_mask(vals, "sideways")


def test_mean_std_over_seeds(report):
    run_dir, out = report
    e = Summary(load_run(run_dir)).entry("darcy", "neuroscale:gamma=0", "rel_l2", 4)
    assert e.n_ok == 2 and e.n_seeds == 2 and e.issues == ()
    assert e.mean == pytest.approx(np.mean(NS_K4), rel=1e-12)
    assert e.std == pytest.approx(np.std(NS_K4, ddof=1), rel=1e-12)  # sample std over seeds
    header, darcy = md_table((out / "leaderboard.md").read_text(), "darcy")
    assert darcy["neuroscale:gamma=0"][col(header, "rel_l2 k=4")] == "**0.0120 ± 0.0028**"
    assert darcy["fno"][col(header, "n_params")] == "123k (1/2 failed)"


def test_unseen_k_marked(report):
    run_dir, out = report
    header, _ = md_table((out / "leaderboard.md").read_text(), "darcy")
    assert [h for h in header if h.startswith("rel_l2")] == [
        "rel_l2 k=4 ↓", "rel_l2 k=8 ↓", "rel_l2 k=16 (unseen) ↓"]
    tex = (out / "leaderboard.tex").read_text()
    assert r"$k{=}16^{\dagger}$" in tex and r"$k{=}8$" in tex
    assert "rel_l2 k=16*" in summary_table(run_dir)


# ---- LaTeX ---------------------------------------------------------------------------
def _cells_in_row(line: str) -> int:
    body = line.rsplit(r"\\", 1)[0]
    cells = re.split(r"(?<!\\)&", body)
    return sum(int(m.group(1)) if (m := re.match(r"\s*\\multicolumn\{(\d+)\}", c)) else 1 for c in cells)


def check_latex_structure(tex: str) -> None:
    unescaped = re.sub(r"\\[{}]", "", tex)
    depth = 0
    for ch in unescaped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, "closing brace without opening"
    assert depth == 0, "unbalanced braces"
    for env in ("table", "tabular"):
        assert tex.count(rf"\begin{{{env}}}") == tex.count(rf"\end{{{env}}}") > 0
    for block in re.findall(r"\\begin\{tabular\}\{([^}]*)\}(.*?)\\end\{tabular\}", tex, re.DOTALL):
        spec, body = block
        n_cols = len(spec)
        assert body.count(r"\toprule") == body.count(r"\midrule") == body.count(r"\bottomrule") == 1
        for line in body.splitlines():
            if line.rstrip().endswith(r"\\"):
                assert _cells_in_row(line) == n_cols, line
    for text in re.findall(r"^(?!%).*$", tex, re.MULTILINE):  # no bare underscore outside math
        assert re.search(r"(?<!\\)_", re.sub(r"\$[^$]*\$", "", text)) is None, text


def test_latex_structure(report):
    _, out = report
    tex = (out / "leaderboard.tex").read_text(encoding="ascii")
    check_latex_structure(tex)
    # darcy has 11 value columns: uncertainty metrics move to a second panel
    darcy = tex.split(r"\texttt{burgers}")[0]
    assert darcy.count(r"\begin{tabular}{lrrrrrrr}") == 1 and darcy.count(r"\begin{tabular}{lrrrr}") == 1
    assert r"$-1.50$" in tex  # a minus sign, not a hyphen
    assert r"coarse\_fv" in tex and r"neuroscale:gamma=0" in tex
    assert r"50\% of *budget* used\_x" in tex and r"\textbar{}" in tex


def test_latex_structure_check_can_fail():
    good = ("\\begin{table}\\begin{tabular}{lr}\n\\toprule\na & b \\\\\n\\midrule\n"
            "\\bottomrule\n\\end{tabular}\\end{table}")
    check_latex_structure(good)
    for bad in (good.replace("a & b", "a & b & c"), good.replace("{lr}", "{lr"), good.replace("a &", "a_x &")):
        with pytest.raises(AssertionError):
            check_latex_structure(bad)


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not on PATH")
def test_latex_compiles(report, tmp_path):
    _, out = report
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                   f"\\input{{{(out / 'leaderboard.tex').as_posix()}}}\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_latex_escape():
    assert escape("a_b & 50% #1 {x} ~ ^ \\ ±") == (
        r"a\_b \& 50\% \#1 \{x\} \textasciitilde{} \textasciicircum{} \textbackslash{} +/-")
    assert escape("naïve 東") == "naive "


# ---- terminal summary, formatting, edge cases ---------------------------------------------
def test_summary_table(report):
    run_dir, _ = report
    text = summary_table(run_dir)
    assert text.index("darcy") < text.index("burgers")
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln and not ln.startswith(("darcy", "burgers", "method"))}
    assert "ok (1/2 failed)" in text and "diverged" in text
    assert re.search(r"neuroscale:gamma=0\s+ok\s+0\.0120\s+0\.0250\s+0\.0700\s+20\.5", text)
    assert "coarse_fv" in lines


def test_number_formatting():
    assert fmt_number(1.234e-5) == "1.23e-05"
    assert fmt_number(0.031234) == "0.0312"
    assert fmt_number(1234.5) == "1234" and fmt_number(12345.0) == "1.23e+04"
    assert fmt_number(2_000_000, "n_params") == "2.00M" and fmt_number(950, "n_params") == "950"
    assert fmt_mean_std(0.2, math.sqrt(0.02)) == ("0.200", "0.141")
    assert fmt_mean_std(0.5, 1e-6) == ("0.500", "1.0e-06")  # tiny spread stays visible
    assert fmt_mean_std(0.5, math.nan) == ("0.500", None)


def test_reader_keeps_na_status_and_names(tmp_path):
    r = Rows()
    r.metric("t", "NA", 0, "rel_l2", 0.1, 4)
    r.metric("t", "NA", 0, "nll", None, 4, "n/a", "deterministic")
    run = load_run(r.write(tmp_path / "run", ["NA"], ["t"], seeds=[0]))
    assert list(run.results["status"]) == ["ok", "n/a"] and list(run.results["method"]) == ["NA", "NA"]
    assert run.results["unseen"].tolist() == [False, False]


def test_missing_results_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "results.csv"))):
        write_report(tmp_path)


def test_duplicate_measurement_rejected(tmp_path):
    r = Rows()
    r.metric("t", "m", 0, "rel_l2", 0.1, 4)
    r.metric("t", "m", 0, "rel_l2", 0.2, 4)
    with pytest.raises(ValueError, match="duplicate"):
        load_run(r.write(tmp_path / "run", ["m"], ["t"], seeds=[0]))


def test_all_failed_task_and_single_method(tmp_path):
    r = Rows()
    r.not_ok("t", "fno", 0, "timeout", "cell exceeded 120 s")
    r.not_ok("t", "fno", 1, "failed", "ValueError: bad")
    run_dir = r.write(tmp_path / "allfail", ["fno"], ["t"])
    out = write_report(run_dir, tmp_path / "out")
    header, rows = md_table((out / "leaderboard.md").read_text(), "t")
    assert [h.split(" ")[1] for h in header] == ["k=4", "k=8", "k=16"]  # from run.json k_test
    assert rows["fno"] == ["failed, timeout"] * 3
    check_latex_structure((out / "leaderboard.tex").read_text())
    assert "failed, timeout" in summary_table(run_dir)
    assert (out / "error_vs_k.png").stat().st_size > 0


def test_missing_cells_are_reported(tmp_path):
    """A method recorded for one task but not another, or a seed never recorded."""
    r = Rows()
    r.cell("a", "m1", 0, {4: 0.1}, 5.0, 1.0, 10)
    r.cell("a", "m2", 0, {4: 0.2}, 6.0, 1.0, 10)
    r.cell("b", "m1", 0, {4: 0.3}, 7.0, 1.0, 10)
    board = build_leaderboard(Summary(load_run(r.write(tmp_path / "run", ["m1", "m2"], ["a", "b"], seeds=[0, 1]))), "b")
    statuses = {row.method: row.status for row in board.rows}
    assert statuses == {"m1": "ok", "m2": "missing"}
    assert board.rows[0].entries[0].issues == (("missing", 1),)


def test_pareto_and_styles():
    pts = [(10.0, 0.1), (100.0, 0.2), (50.0, 0.3), (5.0, 0.05), (100.0, 0.25)]
    assert pareto_front(pts) == [(5.0, 0.05), (10.0, 0.1), (100.0, 0.2)]
    a = method_styles(["x", "y", "z"])
    b = method_styles(["x", "y", "z", "w"])
    assert all(a[m] == b[m] for m in a)  # prefix-stable
    assert len({(s.color, s.marker) for s in method_styles([str(i) for i in range(40)]).values()}) == 40


def test_nan_values_stay_visible(tmp_path):
    r = Rows()
    for seed in (0, 1):
        r.metric("t", "a", seed, "rel_l2", float("nan") if seed == 0 else 0.1, 4)
        r.metric("t", "b", seed, "rel_l2", float("nan"), 4)
        r.metric("t", "c", seed, "rel_l2", 0.3, 4)
    out = write_report(r.write(tmp_path / "run", ["a", "b", "c"], ["t"]), tmp_path / "out")
    _, rows = md_table((out / "leaderboard.md").read_text(), "t")
    assert rows["a"] == ["**0.100 (1/2 NaN)**"] and rows["b"] == ["NaN"] and rows["c"] == ["0.300 ± 0.000"]


def test_empty_results_table(tmp_path):
    run_dir = Rows().write(tmp_path / "empty", [], [])
    out = write_report(run_dir, tmp_path / "out")
    assert "No results recorded" in (out / "leaderboard.md").read_text()
    assert summary_table(run_dir) == "(no results)"


def test_figure_contents(report):
    """Unseen factor shaded and labelled; failed methods left out and named; the Pareto
    front goes through the non-dominated methods; one colour per method everywhere."""
    run_dir, _ = report
    summary = Summary(load_run(run_dir))
    styles = method_styles(summary.methods)
    fig = plot_error_vs_k(summary, styles)
    darcy, burgers = fig.axes[:2]
    assert [t.get_text() for t in darcy.get_xticklabels()] == ["4", "8", "16\n(unseen)"]
    (band,) = darcy.patches  # the unseen band covers k=16 only
    if hasattr(band, "get_width"):  # Rectangle (matplotlib >= 3.9)
        x0, x1 = band.get_x(), band.get_x() + band.get_width()
    else:  # Polygon
        x0, x1 = min(band.get_xy()[:, 0]), max(band.get_xy()[:, 0])
    assert 8 < x0 < 16 < x1
    assert "fno (diverged)" in burgers.get_title() and "fno: 1/2 seeds failed" in darcy.get_title()
    colours = {c.get_label(): c.lines[0].get_color() for c in darcy.containers}
    assert colours == {m: styles[m].color for m in ("coarse_fv", "fno", "neuroscale:gamma=0")}
    assert [c.get_label() for c in burgers.containers] == ["neuroscale:gamma=0"]
    fig2 = plot_accuracy_vs_speedup(summary, styles)
    (front,) = [ln for ln in fig2.axes[0].get_lines() if ln.get_label() == "Pareto front"]
    # darcy: neuroscale (20.5, 0.012) and fno (200, 0.02) are non-dominated, coarse_fv is not
    assert list(front.get_xdata()) == [20.5, 200.0]
    assert list(front.get_ydata()) == pytest.approx([0.012, 0.02])
    assert {t.get_text() for t in fig2.axes[0].texts} == {"coarse_fv", "fno", "neuroscale:gamma=0"}
