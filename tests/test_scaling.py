"""Data-scaling runs (`bench run --n-train`): the subset, the cell identity, resume per
size, bad sizes, the power-law fit and the report's figure and table."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.cell import CellConfig, train_test
from bench.cli import main
from bench.compare import compare
from bench.config import BUDGETS
from bench.data import load_or_generate
from bench.predict import rescore
from bench.records import read_record, read_results
from bench.report.scaling import fit_power_law
from bench.runner import RunConfig, plan, run
from nskernel import Factors
from nskernel.errors import UsageError
from tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
FACTORS = Factors((4, 8), (4, 8, 16))
TINY_FNO = "fno:width=8,n_layers=2,n_modes=6"
QUIET = {"log": lambda s: None}


def cfg(tmp_path: Path, data_dir: Path, methods: str = "mean,coarse_fv", **kw) -> RunConfig:
    kw.setdefault("out", tmp_path / "run")
    return RunConfig(tasks="darcy", methods=methods, size="smoke", data_dir=data_dir, progress=False, **kw)


def test_the_subset_is_the_first_n_training_samples(data_dir):
    task = TASKS["darcy"].sized("smoke")
    data, _, _ = load_or_generate(task, Path(data_dir))
    full_train, full_test = train_test(task, data, FACTORS)
    train, test = train_test(task, data, FACTORS, n_train=5)
    assert len(full_train) == task.n_train and len(train) == 5
    np.testing.assert_array_equal(train.inputs, full_train.inputs[:5])
    for k in FACTORS.train:
        np.testing.assert_array_equal(train.targets[k], full_train.targets[k][:5])
    assert set(train.targets) == set(FACTORS.train) and train.fine is None  # the same view as always
    # validation and test: untouched
    np.testing.assert_array_equal(train.validation.inputs, full_train.validation.inputs)
    np.testing.assert_array_equal(test.inputs, full_test.inputs)
    for k in FACTORS.test:
        np.testing.assert_array_equal(test.targets[k], full_test.targets[k])
    np.testing.assert_array_equal(train_test(task, data, FACTORS, n_train=task.n_train)[0].inputs, full_train.inputs)
    with pytest.raises(ValueError, match=f"has {task.n_train} training samples"):
        train_test(task, data, FACTORS, n_train=task.n_train + 1)


def test_the_size_is_part_of_the_identity_only_when_set():
    plain = CellConfig(task="darcy", method="mean", seed=0, size="smoke", factors=FACTORS, budget=BUDGETS["smoke"],
                       run_dir="r")
    sized = replace(plain, n_train=8)
    assert "n_train" not in plain.identity() and sized.identity()["n_train"] == 8
    assert sized.config_hash != plain.config_hash != replace(plain, n_train=4).config_hash
    assert plain.path.name == "darcy__mean__seed0.json" and sized.path.name == "darcy__mean__seed0__n8.json"
    assert sized.checkpoint_dir.name == "darcy__mean__seed0__n8"
    # the committed smoke reference stays valid: same hash, same file name
    ref = read_record(ROOT / "results/reference-smoke/records/darcy__mean__seed0.json")
    assert plain.config_hash == ref["config_hash"] and "n_train" not in ref


def test_plan_runs_learning_methods_per_size_and_the_others_once(tmp_path, data_dir):
    cells = plan(cfg(tmp_path, data_dir, n_train=(16, 8, 8), seeds=(0, 1))).cells
    got = sorted((c.method, c.n_train or 0, c.seed) for c in cells)
    assert got == [("coarse_fv", 0, 0), ("coarse_fv", 0, 1),
                   ("mean", 8, 0), ("mean", 8, 1), ("mean", 16, 0), ("mean", 16, 1)]
    assert all(c.n_train is None for c in plan(cfg(tmp_path, data_dir)).cells)  # without the option


@pytest.mark.parametrize("sizes, message", [
    ((8, 17), "--n-train 17: task darcy has 16 training samples at size smoke; the largest training-set size is 16"),
    ((0, 8), "--n-train sizes must be at least 1, got 0"),
])
def test_bad_sizes_are_refused_naming_the_maximum(tmp_path, data_dir, sizes, message):
    with pytest.raises(UsageError, match=message.replace("-", r"\-")):
        plan(cfg(tmp_path, data_dir, n_train=sizes))


def test_too_large_a_size_exits_2_and_writes_nothing(tmp_path, data_dir, capsys):
    out = tmp_path / "never"
    assert main(["run", "--tasks", "darcy", "--methods", "mean", "--size", "smoke", "--n-train", "8,99",
                 "--out", str(out), "--data-dir", str(data_dir), "--quiet", "--no-report"]) == 2
    assert "the largest training-set size is 16" in capsys.readouterr().err
    assert not out.exists()


def test_records_results_and_resume_per_size(tmp_path, data_dir):
    out = tmp_path / "run"
    assert run(cfg(tmp_path, data_dir, n_train=(8,)), **QUIET) == {"ok": 2}
    assert run(cfg(tmp_path, data_dir, n_train=(8, 16)), **QUIET) == {"ok": 3}  # only mean at 16 was new
    names = sorted(p.name for p in (out / "records").glob("*.json"))
    assert names == ["darcy__coarse_fv__seed0.json", "darcy__mean__seed0__n16.json", "darcy__mean__seed0__n8.json"]
    assert plan(cfg(tmp_path, data_dir, n_train=(16, 8))).todo == []  # everything done: nothing to resume
    rec = read_record(out / "records" / "darcy__mean__seed0__n8.json")
    assert rec["n_train"] == 8 and rec["config"]["n_train"] == 8
    assert json.loads((out / "run.json").read_text())["n_train"] == [8, 16]
    assert (out / "results.csv").read_text().startswith("task,method,seed,n_train,size,k,")
    df = read_results(out)
    assert {m: set(g.dropna()) for m, g in df.groupby("method").n_train} == {"coarse_fv": set(), "mean": {8, 16}}
    mean = df[(df.metric == "rel_l2") & (df.k == 4) & (df.method == "mean")].set_index("n_train").value
    assert mean[8] != mean[16]  # another training set, another mean field
    # a plain run next to it: the one unsized cell it needs is new, the data-free one is shared
    assert len(plan(cfg(tmp_path, data_dir)).todo) == 1
    # compare matches cells by size too
    table = compare(out, out)
    assert (table.verdict != "regressed").all() and set(table.n_train.dropna()) == {8, 16}
    # a run without the option has no such column anywhere
    assert run(cfg(tmp_path, data_dir, methods="mean", out=tmp_path / "plain"), **QUIET) == {"ok": 1}
    assert "n_train" not in read_results(tmp_path / "plain")
    assert (tmp_path / "plain" / "results.csv").read_text().startswith("task,method,seed,size,k,")


def test_power_law_fit_recovers_the_exponent():
    sizes = [8, 16, 64, 256]
    fit = fit_power_law(sizes, [3.2 * n ** -0.7 for n in sizes])
    assert fit.slope == pytest.approx(-0.7, abs=1e-12) and fit.prefactor == pytest.approx(3.2, rel=1e-12)
    assert fit.n_points == 4
    flat = fit_power_law(sizes, [0.1] * 4)
    assert flat.slope == pytest.approx(0.0, abs=1e-12)
    # unusable points are left out; fewer than two sizes: no fit
    part = fit_power_law([8, 16, 32], [2.0 * 8 ** -0.5, math.nan, 2.0 * 32 ** -0.5])
    assert part.slope == pytest.approx(-0.5) and part.n_points == 2
    assert math.isnan(fit_power_law([8, 16], [0.1, 0.0]).slope)


def test_report_of_a_two_size_run(tmp_path, data_dir, capsys):
    out, rep = tmp_path / "run", tmp_path / "report"
    assert main(["run", "--tasks", "darcy", "--methods", f"{TINY_FNO},coarse_fv", "--size", "smoke",
                 "--n-train", "8,16", "--epochs", "1", "--out", str(out), "--data-dir", str(data_dir),
                 "--threads", "1", "--quiet", "--no-report"]) == 0
    assert main(["report", str(out), "--out", str(rep)]) == 0
    assert (rep / "scaling_darcy.png").stat().st_size > 0 and (rep / "scaling_darcy.pdf").exists()
    text = (rep / "scaling.md").read_text()
    # the slope of the table is the fit of the seed means in results.csv
    df = read_results(out)
    sub = df[(df.method == TINY_FNO) & (df.metric == "rel_l2") & (df.k == 4)].sort_values("n_train")
    slope = fit_power_law(sub.n_train.astype(float), sub.value).slope
    assert f"| {TINY_FNO} | " in text and f" | {slope:+.3f} |" in text
    assert "### darcy, k=16 (unseen)" in text and "| rel_l2 N=8 ↓ | rel_l2 N=16 ↓ | slope |" in text
    assert "| coarse_fv (no training data) |" in text and "![Data scaling: darcy](scaling_darcy.png)" in text
    board = (rep / "leaderboard.md").read_text()
    assert f"| {TINY_FNO} [N=8] |" in board and "## Data scaling" in board
    assert 'href="scaling.md"' in (rep / "index.html").read_text()
    # a sized cell reloads from its checkpoint and re-scores to its record
    rows = rescore(out, "darcy", TINY_FNO, 0, data_dir, n_train=8)
    assert rows and all(abs(r["rescored"] - r["recorded"]) <= 1e-6 for r in rows)
