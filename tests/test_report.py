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

    darcy: fno seed 1 failed (partial), neuroscale is probabilistic, max_principle (a physics law) recorded.
    burgers: coarse_fv does not apply (n/a cell), fno diverged on both seeds, neuroscale
    cannot produce the unseen k=16 (metric-level n/a), max_principle n/a for all methods.
    """
    r = Rows()
    prob = {"nll": -1.5, "ece": 0.04, "crps": 0.006, "coverage_90": 0.87}
    for seed in (0, 1):
        # darcy: lowest rel_l2 is neuroscale (k=4), highest speedup is fno.
        r.cell("darcy", "coarse_fv", seed, {4: 0.050 + 0.002 * seed, 8: 0.080, 16: 0.12}, 50.0, 0.0, 0,
               extra={"max_principle": (1e-10, 4)})
        if seed == 0:
            r.cell("darcy", "fno", seed, {4: 0.020, 8: 0.030, 16: 0.090}, 200.0, 30.0, 123456,
                   extra={"max_principle": (0.003, 4)})
        else:
            r.not_ok("darcy", "fno", seed, "failed", FAIL_REASON)
        r.cell("darcy", "neuroscale:gamma=0", seed, {4: NS_K4[seed], 8: 0.025, 16: 0.07}, 20.0 + seed, 60.0,
               2_000_000, prob=prob, extra={"max_principle": (0.002, 4)})
        # burgers
        r.not_ok("burgers", "coarse_fv", seed, "n/a", "task burgers has no coarse solver")
        r.not_ok("burgers", "fno", seed, "diverged", "loss became NaN at epoch 3")
        r.cell("burgers", "neuroscale:gamma=0", seed, {4: 0.03, 8: 0.05, 16: None}, 10.0, 40.0, 2_000_000,
               prob=prob, na_k=(16,), extra={
                   "max_principle": ("task burgers has no maximum principle", 4),
                   "spectrum_err": (0.1 + seed * 0.02, 4), "fluct_rel_l2": (0.06, 4)})
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
    assert not any(h.startswith("max_principle") for h in header_b)
    assert "Not shown (no method has a value): max_principle." in md
    assert "task burgers has no maximum principle" in md
    assert burgers["neuroscale:gamma=0"][col(header_b, "spectrum_err (k=4)")] == "0.110 ± 0.014"
    # a time-dependent task's fluctuation error leads its accuracy columns; darcy has none
    assert header_b[0].startswith("fluct_rel_l2 k=4") and header_b[1].startswith("rel_l2 k=4")
    assert header[0].startswith("rel_l2 k=4") and not any(h.startswith("fluct") for h in header)


def test_bold_is_direction_aware(report):
    _, out = report
    md = (out / "leaderboard.md").read_text()
    header, darcy = md_table(md, "darcy")
    assert bold_methods(header, darcy, "rel_l2 k=4") == ["neuroscale:gamma=0"]  # lower is better
    assert bold_methods(header, darcy, "speedup") == ["fno"]  # higher is better
    assert bold_methods(header, darcy, "max_principle") == ["coarse_fv"]
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
    # three identical seeds: np.std of equal floats can be round-off (3.4e-17), not a spread
    assert fmt_mean_std(0.248, 3.4e-17) == ("0.248", "0.000")
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


# =====================================================================================
# Runs with records: bootstrap CIs, ranks, ablation, unseen-k, figures, index.html
# =====================================================================================
import zlib  # noqa: E402
from html.parser import HTMLParser  # noqa: E402

from bench import SCHEMA_VERSION  # noqa: E402
from bench.records import measurement, record_path, write_json_atomic, write_results_csv  # noqa: E402
from bench.report.ablation import ablation_grid, unseen_grid  # noqa: E402
from bench.report.artifacts import TaskInfo, load_artifacts  # noqa: E402
from bench.report.bootstrap import bootstrap_ci, ci_for, rng_for  # noqa: E402
from bench.report.dynamics import energy_spectrum  # noqa: E402
from bench.report.panels import choose_snapshots, plot_panels  # noqa: E402
from bench.report.ranks import average_ranks, rank_values  # noqa: E402
from bench.report.reliability import reliability_curves, reliability_ks  # noqa: E402

N_TEST = 12
LEVELS = np.linspace(0.05, 0.95, 19)
# rel_l2 level of each method (k=4; x1.5 at k=8, x3 at the unseen k=16)
ERR = {"neuroscale": 0.010, "neuroscale:gamma=0": 0.014, "neuroscale:heads=1": 0.020, "fno": 0.030,
       "coarse_fv": 0.050, "mean": 0.5}
PROBABILISTIC = {"neuroscale", "neuroscale:gamma=0", "neuroscale:heads=1"}
K_FACTOR = {4: 1.0, 8: 1.5, 16: 3.0}
HORIZONS = (1, 2, 4, 8)
RICH_FAIL = "RuntimeError: <oops> & boom"
COMMIT = "deadbeef1234+dirty"


def _per_sample(rng, level: float) -> list[float]:
    return list(level * (1.0 + 0.2 * rng.standard_normal(N_TEST)))


def _snapshot(run_dir: Path, task: str, method: str, seed: int, fine: int) -> str:
    """A smooth field, its block averages, a prediction off by the method's error level."""
    rng = np.random.default_rng(7)  # the same test sample in every cell
    x = np.linspace(0, 2 * np.pi, fine, endpoint=False)
    field = np.sin(x)[None, :] * np.cos(2 * x)[:, None] + 0.1 * rng.standard_normal((fine, fine))
    arrays = {"input": np.stack([field, field ** 2])}
    noise = np.random.default_rng([zlib.crc32(method.encode()), seed])
    for k in K_TEST:
        target = field.reshape(fine // k, k, fine // k, k).mean(axis=(1, 3))[None]
        arrays[f"target_k{k}"] = target
        arrays[f"mean_k{k}"] = target + ERR[method] * K_FACTOR[k] * noise.standard_normal(target.shape)
        if method in PROBABILISTIC:
            arrays[f"var_k{k}"] = np.full(target.shape, (ERR[method] * K_FACTOR[k]) ** 2)
    rel = Path("samples") / f"{task}__{method.replace(':', '_')}__seed{seed}.npz"
    (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(run_dir / rel, **arrays)
    return str(rel)


def _record(run_dir: Path, task: str, method: str, seed: int, time_dependent: bool) -> None:
    rng = np.random.default_rng([zlib.crc32(f'{task}|{method}'.encode()), seed])
    rec = {"schema_version": SCHEMA_VERSION, "task": task, "method": method, "seed": seed, "size": "smoke",
           "status": "ok", "config_hash": "x", "error": None, "measurements": []}
    if task == "darcy" and method == "neuroscale:heads=1" and seed == 1:
        rec.update(status="failed", error=RICH_FAIL)
        write_json_atomic(record_path(run_dir, task, method, seed), rec)
        return
    rows = rec["measurements"]
    prob = method in PROBABILISTIC
    for k in K_TEST:
        unseen = k not in K_TRAIN
        vals = _per_sample(rng, ERR[method] * K_FACTOR[k] * (1 + 0.05 * seed))
        rows.append(measurement("rel_l2", float(np.mean(vals)), k=k, unseen=unseen, n=N_TEST, samples=vals))
        cons = _per_sample(rng, 0.1 * ERR[method])
        rows.append(measurement("max_principle", float(np.mean(cons)), k=k, unseen=unseen, samples=cons))
        for name, level in (("nll", -2.0 + 10 * ERR[method]), ("ece", 0.02 + ERR[method])):
            if prob:
                v = _per_sample(rng, level)
                rows.append(measurement(name, float(np.mean(v)), k=k, unseen=unseen, samples=v))
            else:
                rows.append(measurement(name, math.nan, k=k, unseen=unseen, status="n/a",
                                        reason="deterministic method (no predictive variance)"))
        rows.append(measurement("speedup", 100 * ERR[method] / K_FACTOR[k], k=k, unseen=unseen))
        for n in HORIZONS if time_dependent else ():
            if method in ("fno", "mean"):
                rows.append(measurement(f"rollout_rel_l2@{n}", math.nan, k=k, unseen=unseen, status="n/a",
                                        reason="method cannot take coarse input"))
            else:
                v = _per_sample(rng, ERR[method] * K_FACTOR[k] * 2 ** (n / 2))
                rows.append(measurement(f"rollout_rel_l2@{n}", float(np.mean(v)), k=k, unseen=unseen, samples=v))
    rows += [measurement("train_s", 10.0), measurement("n_params", 1000.0)]
    rec["calibration"] = {"levels": LEVELS.tolist(), "observed": {
        str(k): list(np.clip(LEVELS + 0.05 * (seed + 1) * np.sin(np.pi * LEVELS), 0, 1)) for k in (4, 8)
    } if prob else {}}
    rec["probabilistic"] = prob
    rec["snapshot"] = _snapshot(run_dir, task, method, seed, 64 if time_dependent else 32)
    write_json_atomic(record_path(run_dir, task, method, seed), rec)


def make_record_run(root: Path) -> Path:
    """2 tasks (darcy steady, turb time-dependent) x 6 methods x 2 seeds, through the
    runner's own record format and results.csv writer."""
    run_dir = root / "run_rec"
    for task, td in (("darcy", False), ("turb", True)):
        for method in ERR:
            for seed in (0, 1):
                _record(run_dir, task, method, seed, td)
    write_results_csv(run_dir)
    meta = {"name": "run_rec", "command": "python -m bench run --size smoke --methods 'neuroscale*'",
            "size": "smoke", "tasks": ["darcy", "turb"], "methods": list(ERR), "seeds": [0, 1],
            "k_train": K_TRAIN, "k_test": K_TEST,
            "provenance": {"git_commit": COMMIT, "versions": {"torch": "2.13.0", "numpy": "2.0"},
                           "device": "cpu", "cpu": "test cpu <x86>", "threads": 2, "hostname": "host"},
            "started": "2025-01-01T00:00:00", "finished": "2025-01-01T00:10:00"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    return run_dir


@pytest.fixture(scope="module")
def rich(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rich")
    run_dir = make_record_run(root)
    return run_dir, write_report(run_dir, root / "out")


def _csv(run_dir: Path):
    from bench.records import read_results

    return read_results(run_dir / "results.csv")


# ---- bootstrap -----------------------------------------------------------------------
def test_bootstrap_ci_contains_mean_and_shrinks():
    rng = np.random.default_rng(0)
    small = rng.lognormal(-3, 0.5, 16)
    big = rng.lognormal(-3, 0.5, 256)
    lo, hi = bootstrap_ci([small], rng=rng_for("a"))
    assert lo < small.mean() < hi
    lo2, hi2 = bootstrap_ci([big], rng=rng_for("a"))
    assert lo2 < big.mean() < hi2
    # 16x the samples: about a quarter of the width (standard error ~ 1/sqrt(n))
    ratio = (hi2 - lo2) / (hi - lo)
    assert 0.15 < ratio < 0.4, ratio
    # a percentile bootstrap of a mean is close to the normal interval: catches a wrong factor
    half = 1.96 * big.std() / math.sqrt(len(big))
    assert (hi2 - lo2) / 2 == pytest.approx(half, rel=0.15)
    assert ci_for("k", [big]) == ci_for("k", [big])  # fixed, key-derived generator


def test_bootstrap_ci_averages_seeds():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 0.1, 64), rng.normal(1.2, 0.1, 64)
    lo, hi = bootstrap_ci([a, b])
    assert lo < (a.mean() + b.mean()) / 2 < hi  # the statistic is the mean of the seed means
    # two independent seeds averaged: width / sqrt(2) of one seed's (same spread)
    one = bootstrap_ci([a])
    assert (hi - lo) / (one[1] - one[0]) == pytest.approx(1 / math.sqrt(2), rel=0.2)
    assert bootstrap_ci([np.full(5, 0.3)]) == pytest.approx((0.3, 0.3))
    assert bootstrap_ci([]) is None and bootstrap_ci([np.array([])]) is None
    assert bootstrap_ci([np.array([1.0, np.nan])]) is None


def test_leaderboard_cells_carry_bootstrap_ci(rich):
    run_dir, out = rich
    recs = [json.loads((run_dir / "records" / f"darcy__neuroscale__seed{s}.json").read_text()) for s in (0, 1)]
    groups = [np.array(next(m["samples"] for m in r["measurements"] if m["metric"] == "rel_l2" and m["k"] == 4))
              for r in recs]
    mean = np.mean([g.mean() for g in groups])
    # independent check of the interval's width: normal approximation of the seed average
    half = 1.96 * math.sqrt(sum(g.var() / len(g) for g in groups)) / len(groups)
    agg = __import__("pandas").read_csv(out / "aggregate.csv")
    row = agg[(agg.task == "darcy") & (agg.method == "neuroscale") & (agg.metric == "rel_l2") & (agg.k == 4)].iloc[0]
    assert row["mean"] == pytest.approx(mean, rel=1e-9)
    assert row.ci_lo < mean < row.ci_hi
    assert (row.ci_hi - row.ci_lo) / 2 == pytest.approx(half, rel=0.25)
    header, darcy = md_table((out / "leaderboard.md").read_text(), "darcy")
    cell = darcy["neuroscale"][col(header, "rel_l2 k=4")]
    lo, hi = (float(x) for x in re.search(r"\[([-\d.e]+), ([-\d.e]+)\]", cell).groups())
    assert cell.startswith("**")
    assert lo == pytest.approx(row.ci_lo, abs=1e-5) and hi == pytest.approx(row.ci_hi, abs=1e-5)
    # cost metrics have no per-sample values: no interval
    assert "[" not in darcy["neuroscale"][col(header, "speedup")]
    ci_tex = (out / "leaderboard_ci.tex").read_text()
    assert ci_tex.count(r"\begin{table}") == 2 and r"\label{tab:ci-darcy}" in ci_tex
    assert "speedup" not in ci_tex.split(r"\label{tab:ci-darcy}")[1].split(r"\end{table}")[0]


# ---- ranks ---------------------------------------------------------------------------------
def test_rank_values_directions_and_ties():
    assert rank_values([0.1, 0.3, 0.2], "lower") == [1.0, 3.0, 2.0]
    assert rank_values([0.1, 0.3, 0.2], "higher") == [3.0, 1.0, 2.0]
    assert rank_values([0.8, 0.95, 0.89], "target:0.9") == [3.0, 2.0, 1.0]
    assert rank_values([1.0, 1.0, 2.0], "lower") == [1.5, 1.5, 3.0]
    # NaN (failed) ranks last, tied; None (n/a) takes no part
    assert rank_values([math.nan, 0.2, None, math.nan, 0.1], "lower") == [3.5, 2.0, None, 3.5, 1.0]
    assert rank_values([0.1, None], "lower") == [None, None]  # nobody to compare with


def test_average_rank_constructed_case(tmp_path):
    r = Rows()
    for seed in (0,):
        for m, rel, spd in (("m1", 0.1, 10.0), ("m2", 0.2, 30.0), ("m3", 0.3, 20.0), ("m4", 0.05, None)):
            r.metric("a", m, seed, "rel_l2", rel, 4)
            if spd is None:
                r.metric("a", m, seed, "speedup", None, 4, "n/a", "no fine solver timing")
            else:
                r.metric("a", m, seed, "speedup", spd, 4)
        r.not_ok("b", "m1", seed, "failed", "boom")
        for m, rel, spd in (("m2", 0.5, 5.0), ("m3", 0.4, 5.0)):
            r.metric("b", m, seed, "rel_l2", rel, 4)
            r.metric("b", m, seed, "speedup", spd, 4)
        r.not_ok("b", "m4", seed, "n/a", "task b has no coarse solver")
    summary = Summary(load_run(r.write(tmp_path / "run", ["m1", "m2", "m3", "m4"], ["a", "b"], seeds=[0])))
    ranks = average_ranks(summary, ("rel_l2", "speedup"))
    # task a: rel_l2 m4 1, m1 2, m2 3, m3 4; speedup (higher better, m4 n/a) m2 1, m3 2, m1 3
    # task b: m1 failed -> last in both columns; m4 n/a -> unranked; speedup tie m2 = m3
    expect = {"m1": (2.5, 3.0), "m2": (2.0, 1.75), "m3": (3.0, 1.25), "m4": (1.0, math.nan)}
    for m, (a, b) in expect.items():
        assert ranks[m]["a"] == pytest.approx(a)
        assert ranks[m]["b"] == pytest.approx(b, nan_ok=True)
        assert ranks[m]["overall"] == pytest.approx(np.nanmean([a, b]))
    from bench.report.ranks import rank_grid

    grid = rank_grid(summary, ("rel_l2", "speedup"))
    assert [row.label for row in grid.rows] == ["m4", "m2", "m3", "m1"]  # best overall first
    assert [c.bold for c in grid.rows[0].cells] == [True, False, True]
    assert grid.rows[0].cells[1].ct.label == "n/a"


def test_rank_table_in_reports(rich):
    _, out = rich
    md = (out / "leaderboard.md").read_text()
    section = md.split("## Cross-task summary\n", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ")][1:]
    assert [r.split("|")[1].strip() for r in rows] == [
        "neuroscale", "neuroscale:gamma=0", "neuroscale:heads=1", "fno", "coarse_fv", "mean"]
    assert "**1.00**" in rows[0]
    check_latex_structure((out / "ranks.tex").read_text())


# ---- ablation and unseen-k --------------------------------------------------------------
def test_ablation_lists_variants_and_differences(rich):
    run_dir, out = rich
    df = _csv(run_dir)
    sel = df[(df.task == "darcy") & (df.metric == "rel_l2") & (df.k == 4)]
    full = sel[sel.method == "neuroscale"].value.mean()
    var = sel[sel.method == "neuroscale:gamma=0"].value.mean()
    md = (out / "leaderboard.md").read_text()
    section = md.split("### Ablation: darcy\n", 1)[1].split("\n### ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].split("|")[2:-1]]
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines[1:]}
    assert list(rows) == ["neuroscale", "neuroscale:gamma=0", "neuroscale:heads=1"]  # full model first
    assert header[:3] == ["rel_l2 k=4 ↓", "rel_l2 k=8 ↓", "rel_l2 k=16 (unseen) ↓"]
    assert [h.split(" ")[0] for h in header[3:]] == ["max_principle", "nll", "ece", "speedup"]
    d = var - full
    assert rows["neuroscale:gamma=0"][0].endswith(f"(Δ +{fmt_number(d)}, +{100 * d / full:.0f}%)")
    assert "Δ" not in " ".join(rows["neuroscale"])
    assert rows["neuroscale:heads=1"][0].count("(1/2 failed)") == 1
    nll = rows["neuroscale:gamma=0"][header.index("nll k=4 ↓")]
    assert re.search(r"\(Δ [+-][\d.]+\)$", nll)  # no relative change for a log-likelihood
    tex = (out / "ablation.tex").read_text()
    check_latex_structure(tex)
    assert r"($\Delta$ $+" in tex and r"mean $\pm$ std" in tex


def test_ablation_absent_without_variants(report, tmp_path):
    r = Rows()
    r.cell("t", "neuroscale", 0, {4: 0.1}, 5.0, 1.0, 10)
    r.cell("t", "fno", 0, {4: 0.2}, 6.0, 1.0, 10)
    summary = Summary(load_run(r.write(tmp_path / "run", ["neuroscale", "fno"], ["t"], seeds=[0])))
    assert ablation_grid(summary, "t") is None
    # a variant without the full model: listed, with a note instead of differences
    _, out = report
    md = (out / "leaderboard.md").read_text()
    assert "No finished 'neuroscale' (full model) in this run: differences are not shown." in md


def test_unseen_k_ratio(rich):
    run_dir, out = rich
    df = _csv(run_dir)
    sel = df[(df.task == "turb") & (df.method == "fno") & (df.metric == "rel_l2")]
    ratios = [sel[(sel.seed == s) & (sel.k == 16)].value.item() / sel[(sel.seed == s) & (sel.k == 8)].value.item()
              for s in (0, 1)]
    mean, std = fmt_mean_std(float(np.mean(ratios)), float(np.std(ratios, ddof=1)))
    md = (out / "leaderboard.md").read_text()
    section = md.split("## Unseen-k generalisation\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].split("|")[2:-1]]
    rows = {ln.split("|")[1].strip(): [c.strip().strip("*") for c in ln.split("|")[2:-1]] for ln in lines[1:]}
    assert header == ["darcy k=16 / k=8 ↓", "turb k=16 / k=8 ↓"]
    assert rows["fno"][1] == f"{mean} ± {std}"
    assert rows["neuroscale:heads=1"][0].endswith("(1/2 seeds)")  # seed 1 failed
    grid = unseen_grid(Summary(load_run(run_dir)))
    assert [r.label for r in grid.rows] == list(ERR)


def test_unseen_table_absent_when_all_k_seen(tmp_path):
    r = Rows()
    r.metric("t", "m", 0, "rel_l2", 0.1, 4)
    r.metric("t", "m", 0, "rel_l2", 0.2, 8)
    assert unseen_grid(Summary(load_run(r.write(tmp_path / "run", ["m"], ["t"], seeds=[0])))) is None


# ---- figures -------------------------------------------------------------------------------
DATA_FIGURES = ("reliability", "panels_darcy", "panels_turb", "rollout_error", "energy_spectra")


def test_data_figures_written_when_data_exist(rich):
    _, out = rich
    for stem in DATA_FIGURES:
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-", stem
        assert (out / f"{stem}.png").stat().st_size > 10_000, stem


def test_data_figures_skipped_without_records(report):
    _, out = report
    for stem in ("reliability", "panels_darcy", "rollout_error", "energy_spectra"):
        assert not (out / f"{stem}.png").exists()
    page = (out / "index.html").read_text()
    assert "Not drawn: no probabilistic method recorded a calibration curve in this run." in page
    assert "Not drawn: no time-dependent task (no rollout_rel_l2@n metric) in this run." in page
    assert "Not drawn: no finished cell of task darcy saved a test-sample snapshot." in (
        out / "leaderboard.md").read_text()


def test_reliability_curves_average_seeds(rich):
    run_dir, _ = rich
    summary = Summary(load_run(run_dir))
    curves = reliability_curves(summary, load_artifacts(run_dir), "darcy")
    assert [c.method for c in curves] == ["neuroscale", "neuroscale:gamma=0", "neuroscale:heads=1"]
    shape = np.sin(np.pi * LEVELS)
    full = curves[0]
    assert full.k == 4 and full.n_seeds == 2
    np.testing.assert_allclose(full.observed, np.clip(LEVELS + 0.075 * shape, 0, 1), atol=1e-12)
    assert curves[2].n_seeds == 1  # seed 1 failed: seed 0's curve only
    np.testing.assert_allclose(curves[2].observed, np.clip(LEVELS + 0.05 * shape, 0, 1), atol=1e-12)

    # per k: the rich run recorded curves at k=4 and k=8 (seen factors); same seed average at k=8
    assert reliability_ks(load_artifacts(run_dir), "darcy") == [4, 8]
    at8 = reliability_curves(summary, load_artifacts(run_dir), "darcy", 8)
    assert [c.k for c in at8] == [8, 8, 8]
    np.testing.assert_allclose(at8[0].observed, full.observed, atol=1e-12)


CONFORMAL = ("conformal:base=neuroscale", "conformal:base=fno_ensemble,mode=isotonic")


def make_calibration_run(root: Path) -> Path:
    """Task a: neuroscale and two conformal wrappers with curves at k=4 (training) and k=16
    (unseen), fno deterministic; task b: neuroscale at k=4 only; task c: fno only."""
    run_dir = root / "run_calib"
    methods = ["neuroscale", *CONFORMAL, "fno"]
    plan = {"a": (methods, (4, 16)), "b": (["neuroscale", "fno"], (4,)), "c": (["fno"], (4,))}
    for task, (ms, ks) in plan.items():
        for method in ms:
            prob = method != "fno"
            for seed in (0, 1):
                rows = [measurement("rel_l2", 0.01 * k, k=k, unseen=k not in K_TRAIN, n=4) for k in ks]
                # over-confident at the unseen factor, more so for the base than the wrappers
                tilt = {4: 0.02, 16: 0.2 if method == "neuroscale" else 0.1}
                observed = {str(k): list(np.clip(LEVELS + (tilt[k] + 0.01 * seed) * np.sin(2 * np.pi * LEVELS),
                                                 0, 1)) for k in ks} if prob else {}
                write_json_atomic(record_path(run_dir, task, method, seed), {
                    "schema_version": SCHEMA_VERSION, "task": task, "method": method, "seed": seed,
                    "size": "smoke", "status": "ok", "config_hash": "x", "error": None, "measurements": rows,
                    "calibration": {"levels": LEVELS.tolist(), "observed": observed}, "probabilistic": prob,
                })
    write_results_csv(run_dir)
    (run_dir / "run.json").write_text(json.dumps({
        "name": "run_calib", "size": "smoke", "tasks": list(plan), "methods": methods, "seeds": [0, 1],
        "k_train": K_TRAIN, "k_test": [4, 16]}))
    return run_dir


def test_reliability_diagrams_per_task_and_k(tmp_path):
    from bench.report.figures import method_styles
    from bench.report.reliability import plot_reliability, reliability_panels

    run_dir = make_calibration_run(tmp_path)
    summary, artifacts = Summary(load_run(run_dir)), load_artifacts(run_dir)
    panels = reliability_panels(summary, artifacts)
    # one panel per (task, k) with a curve; task c (deterministic only) has no row
    assert [(p.task, p.k, p.unseen) for p in panels] == [("a", 4, False), ("a", 16, True), ("b", 4, False)]
    a16 = panels[1]
    assert [c.method for c in a16.curves] == ["neuroscale", *CONFORMAL]  # wrappers drawn, run order
    assert all(c.n_seeds == 2 for c in a16.curves)
    np.testing.assert_allclose(a16.curves[0].observed, np.clip(LEVELS + 0.205 * np.sin(2 * np.pi * LEVELS), 0, 1))
    assert a16.missing == []

    styles = method_styles(summary.methods)
    fig = plot_reliability(summary, artifacts, styles)
    titles = sorted(ax.get_title() for ax in fig.axes)
    assert titles == ["a, k = 16 (unseen)", "a, k = 4", "b, k = 4"]  # (b, 16): not evaluated, no slot
    ax16 = next(ax for ax in fig.axes if ax.get_title() == "a, k = 16 (unseen)")
    lines = [ln for ln in ax16.get_lines() if ln.get_label() in summary.methods]
    assert [ln.get_label() for ln in lines] == ["neuroscale", *CONFORMAL]
    # distinguishable: every curve its own (colour, marker)
    assert len({(tuple(ln.get_color()), ln.get_marker()) for ln in lines}) == 3
    # the two wrappers' curves coincide here: staggered markers keep both visible
    np.testing.assert_allclose(a16.curves[1].observed, a16.curves[2].observed)
    assert [ln.get_markevery() for ln in lines] == [(0, 3), (1, 3), (2, 3)]
    np.testing.assert_allclose(lines[1].get_ydata(), a16.curves[1].observed)
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["neuroscale", *CONFORMAL, "perfect calibration"]  # fno: deterministic, not listed
    # the long wrapper names fit: the legend sits outside every panel, covering no data
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes)


def test_reliability_notes_k_without_curve(tmp_path):
    """A task evaluated at k whose methods recorded no curve there: the slot says so."""
    from bench.report.figures import method_styles
    from bench.report.reliability import plot_reliability

    run_dir = make_calibration_run(tmp_path)
    rec_path = record_path(run_dir, "b", "neuroscale", 0)
    rec = json.loads(rec_path.read_text())
    rec["measurements"].append(measurement("rel_l2", 0.2, k=16, unseen=True, n=4))
    write_json_atomic(rec_path, rec)
    # a method with a curve at k=4 only, in a task whose other methods have k=16
    rec_path = record_path(run_dir, "a", CONFORMAL[1], 1)
    rec = json.loads(rec_path.read_text())
    del rec["calibration"]["observed"]["16"]
    write_json_atomic(rec_path, rec)
    rec_path = record_path(run_dir, "a", CONFORMAL[1], 0)
    rec = json.loads(rec_path.read_text())
    del rec["calibration"]["observed"]["16"]
    write_json_atomic(rec_path, rec)
    write_results_csv(run_dir)
    summary, artifacts = Summary(load_run(run_dir)), load_artifacts(run_dir)
    fig = plot_reliability(summary, artifacts, method_styles(summary.methods))
    by_title = {ax.get_title().split("\n")[0]: ax for ax in fig.axes}
    assert set(by_title) == {"a, k = 4", "a, k = 16 (unseen)", "b, k = 4", "b, k = 16 (unseen)"}
    assert "no calibration curve" in by_title["b, k = 16 (unseen)"].texts[0].get_text()
    assert by_title["a, k = 16 (unseen)"].get_title().split("\n")[1:] == ["no curve:", CONFORMAL[1]]


def test_panels_pick_best_methods_with_shared_scales(rich):
    run_dir, _ = rich
    summary, artifacts = Summary(load_run(run_dir)), load_artifacts(run_dir)
    snaps, k = choose_snapshots(summary, artifacts, "darcy")
    # best four by rel_l2 at k=4 (coarse_fv is fifth), plus the mean baseline
    assert [s.method for s in snaps] == ["neuroscale", "neuroscale:gamma=0", "neuroscale:heads=1", "fno", "mean"]
    assert k == 4 and all(s.seed == 0 for s in snaps)
    fig = plot_panels(summary, artifacts, "darcy", TaskInfo(("a",), ("u",), "dirichlet"))
    grid = np.array(fig.axes[: 5 * len(snaps)]).reshape(len(snaps), 5)
    for j in range(5):
        clims = {ax.images[0].get_clim() for ax in grid[:, j] if ax.images}
        assert len(clims) == 1, j  # one colour scale per column
    assert grid[0, 1].images[0].get_clim() == grid[0, 2].images[0].get_clim()  # truth and prediction
    truth = grid[0, 1].images[0].get_array()
    np.testing.assert_allclose(grid[3, 1].images[0].get_array(), truth)  # same test sample in every row
    for i in (3, 4):  # fno and mean are deterministic
        assert not grid[i, 4].images and "n/a" in grid[i, 4].texts[0].get_text()
    assert 'output channel 0 "u"' in fig._suptitle.get_text()


def test_energy_spectrum_vorticity_velocity_and_channel():
    n = 32
    x = np.arange(n) * 2 * np.pi / n
    xx, yy = np.meshgrid(x, x)  # rows: y, columns: x
    # streamfunction cos(3x)cos(4y): |κ| = 5; u = ∂ψ/∂y, v = -∂ψ/∂x, ω = -∇²ψ = 25ψ
    psi = np.cos(3 * xx) * np.cos(4 * yy)
    u, v = -4 * np.cos(3 * xx) * np.sin(4 * yy), 3 * np.sin(3 * xx) * np.cos(4 * yy)
    ke = 0.5 * np.mean(u ** 2 + v ** 2)
    k1, e1, what1 = energy_spectrum((25 * psi)[None], TaskInfo(out_names=("omega",), boundary="periodic"))
    k2, e2, what2 = energy_spectrum(np.stack([u, v]), TaskInfo(out_names=("u", "v"), boundary="periodic"))
    assert what1 == "kinetic energy from vorticity" and what2 == "kinetic energy"
    np.testing.assert_allclose(e1, e2, atol=1e-12)
    assert e1.sum() == pytest.approx(ke, rel=1e-12) and k1[np.argmax(e1)] == 5
    # periodic in x only: x spectrum averaged over z, total = mean square (Parseval)
    f = np.sin(3 * xx) * (1 + yy)
    kx, ex, what = energy_spectrum(f[None], TaskInfo(out_names=("T",), boundary="periodic-x/no-slip-z"))
    assert kx[np.argmax(ex)] == 3 and ex.sum() == pytest.approx(np.mean(f ** 2), rel=1e-12)
    assert what == "power of channel 0 (t), x spectrum"
    _, e0, what0 = energy_spectrum(f[None], TaskInfo())
    assert what0 == "power of channel 0" and e0.sum() <= np.mean(f ** 2)


def test_a_failing_figure_keeps_tables_and_is_reported(rich, tmp_path, monkeypatch):
    """One figure raising: warned, listed at the top of index.html, no stale image, and
    every table and the other figures still written."""
    from matplotlib.figure import Figure

    import bench.report.writer as writer

    def boom() -> Figure:
        raise RuntimeError("drawing <exploded>")

    def tiny() -> Figure:
        fig = Figure(figsize=(1, 1))
        fig.subplots().plot([0, 1])
        return fig

    jobs = [writer.FigureJob("broken", "Broken", "never drawn", boom), writer.FigureJob("fine", "Fine", "ok", tiny)]
    monkeypatch.setattr(writer, "figure_jobs", lambda *a: jobs)
    out = tmp_path / "out"
    out.mkdir()
    (out / "broken.png").write_bytes(b"stale")
    with pytest.warns(UserWarning, match="figure broken failed: RuntimeError"):
        write_report(rich[0], out)
    assert not (out / "broken.png").exists() and (out / "fine.png").exists()
    for name in ("leaderboard.md", "leaderboard.tex", "ranks.tex", "ablation.tex", "unseen_k.tex", "aggregate.csv"):
        assert (out / name).stat().st_size > 0
    page = (out / "index.html").read_text()
    assert "figure broken: RuntimeError: drawing &lt;exploded&gt;" in page and "Figure failed" in page
    assert "Figure failed: `RuntimeError: drawing <exploded>`" in (out / "leaderboard.md").read_text()


# ---- index.html --------------------------------------------------------------------------------
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class StrictParser(HTMLParser):
    """Records tags, links and images; fails on a closing tag that does not match."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.imgs: list[str] = []
        self.hrefs: list[str] = []
        self.ids: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.ids += [a["id"]] if "id" in a else []
        if tag == "img":
            self.imgs.append(a["src"])
            assert a.get("alt"), "image without alt text"
        if tag == "a":
            self.hrefs.append(a["href"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-4:])
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_page(path: Path) -> StrictParser:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    p = StrictParser()
    p.feed(text)
    p.close()
    assert p.stack == [], p.stack
    return p


def test_index_html_structure(rich):
    run_dir, out = rich
    p = parse_page(out / "index.html")
    assert p.tags.count("html") == p.tags.count("head") == p.tags.count("body") == 1
    assert "script" not in p.tags and "link" not in p.tags  # self-contained: no JS, no stylesheet
    pngs = sorted(f.name for f in out.glob("*.png"))
    assert sorted(p.imgs) == pngs and len(pngs) == 7  # every figure shown, every link resolves
    for ref in p.imgs + [h for h in p.hrefs if not h.startswith("#")]:
        assert "://" not in ref and (out / ref).is_file(), ref
    for anchor in (h[1:] for h in p.hrefs if h.startswith("#")):
        assert anchor in p.ids, anchor
    text = " ".join(p.text)
    assert COMMIT in text and "test cpu <x86>" in text and "torch 2.13.0" in text
    assert "python -m bench run --size smoke --methods 'neuroscale*'" in text
    assert "neuroscale:heads=1: failed (seed 1): RuntimeError: <oops> & boom" in text  # as text, escaped
    page = (out / "index.html").read_text()
    assert "<oops>" not in page and "&lt;oops&gt; &amp; boom" in page
    assert p.tags.count("table") == 2 + 1 + 2 + 1  # leaderboards, ranks, ablations, unseen-k
    assert re.search(r"<strong>0\.0\d+ ± 0\.\d+ \[0\.\d+, 0\.\d+\]</strong>", page)  # CI in the cells


def test_index_html_without_records(report):
    _, out = report
    p = parse_page(out / "index.html")
    assert sorted(p.imgs) == ["accuracy_vs_speedup.png", "error_vs_k.png"]
    assert all((out / src).is_file() for src in p.imgs)
    text = " ".join(p.text)
    assert "abc1234" in text and "No NeuroScale variant" not in text  # neuroscale:gamma=0 is one
    assert "fno: diverged (seeds 0, 1): loss became NaN at epoch 3" in text


def test_all_latex_files_parse(rich):
    _, out = rich
    for name in ("leaderboard.tex", "leaderboard_ci.tex", "ranks.tex", "ablation.tex", "unseen_k.tex"):
        tex = (out / name).read_text(encoding="ascii")
        check_latex_structure(tex)
        assert r"\begin{table}" in tex, name


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not on PATH")
def test_all_latex_files_compile(rich, tmp_path):
    _, out = rich
    inputs = "".join(f"\\input{{{(out / n).as_posix()}}}\n\\clearpage\n" for n in (
        "leaderboard.tex", "leaderboard_ci.tex", "ranks.tex", "ablation.tex", "unseen_k.tex"))
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                   f"\\begin{{document}}\n{inputs}\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no chromium / google-chrome on PATH")
def test_index_html_renders_in_headless_chromium(rich, tmp_path):
    """The page loads in a real browser: the DOM it builds has every table and image, and
    the screenshot is not blank."""
    _, out = rich
    url = (out / "index.html").resolve().as_uri()
    base = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<table") == 6 and dom.stdout.count("<img") == 7
    shot = tmp_path / "shot.png"
    proc = subprocess.run([*base, "--window-size=1200,2400", f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[0] == 2400 and img[..., :3].std() > 0.05  # text and figures, not an empty page


def test_calibration_across_scales_table_lists_probabilistic_methods_at_their_ks(report):
    _, out = report
    md = (out / "leaderboard.md").read_text()
    section = md.split("## Calibration across scales\n", 1)[1].split("\n## ", 1)[0]
    darcy = section.split("### darcy\n", 1)[1].split("\n### ", 1)[0]
    lines = [ln for ln in darcy.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].split("|")[2:-1]]
    assert header == ["coverage_90 k=4 →0.9", "ece k=4 ↓"]  # the fixture records them at k=4 only
    methods = [ln.split("|")[1].strip() for ln in lines[1:]]
    assert methods == ["neuroscale:gamma=0"]  # the deterministic rows have no coverage anywhere
    assert "0.870" in lines[1]  # the fixture's coverage_90
