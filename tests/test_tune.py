"""`bench tune`: a seeded Optuna study over a method's search space, each trial one
harness cell scored on the validation split (never the test split), resumable."""

from __future__ import annotations

import dataclasses
import json
import math
import sys

import pytest

import bench.cell
import bench.tune
from bench.cell import CellConfig, failure_record
from bench.cli import main
from bench.names import build_method, parse_spec
from bench.records import read_record, write_json_atomic
from bench.runner import RunConfig, run
from bench.tune import TuneConfig, tune, variant
from methods import METHODS
from methods.search_spaces import SEARCH_SPACES
from nskernel import Budget, Factors
from nskernel.errors import UsageError
from tasks import TASKS

COSTS = {"train_s", "peak_mem_mb", "n_params"}  # what a trial measures besides its validation score


def _values(entry: tuple) -> list:
    kind, *args = entry
    return list(args[0]) if kind == "choice" else [args[0], args[1]]


@pytest.mark.parametrize("name", sorted(SEARCH_SPACES))
def test_search_spaces_name_real_parameters_and_accepted_values(name):
    assert name in METHODS
    space = SEARCH_SPACES[name]
    defaults = METHODS[name].param_defaults()
    assert set(space) <= set(defaults), f"{name}: {set(space) - set(defaults)} are not its parameters"
    for param, entry in space.items():
        assert entry[0] in bench.tune.KINDS
        if entry[0] != "choice":
            assert entry[1] < entry[2] and (not entry[0].startswith("log") or entry[1] > 0)
        assert type(defaults[param]) in {type(v) for v in _values(entry)} | ({float} if entry[0].endswith(
            "float") else set()), f"{name}.{param}: values of another type than its default {defaults[param]!r}"
    # every bound and choice builds (check_params) and applies to every built-in task and size
    points = [{p: _values(e)[0] for p, e in space.items()}, {p: _values(e)[-1] for p, e in space.items()}]
    points += [{p: v} for p, e in space.items() if e[0] == "choice" for v in _values(e)]
    # the tasks of a domain the method runs on (on another it is n/a by domain, `Method.domains`)
    kinds = {task: cls.sized("smoke").spec().kind for task, cls in TASKS.items()}
    # (a graph task at smoke only: its larger sizes build 55k- and 1.2M-node graphs, and
    # whether a graph method's hyperparameter applies does not depend on the node count)
    specs = [cls.sized(size).spec() for task, cls in TASKS.items() if kinds[task] in METHODS[name].domains
             for size in (("smoke",) if kinds[task] == "graph" else ("smoke", "small", "paper"))]
    for point in points:
        _, method = build_method(variant(name, point))
        for spec in specs:
            assert method.not_applicable(spec) is None, (point, spec.name, spec.fine_shape)


def test_a_test_cell_keeps_its_identity():
    cell = CellConfig(task="darcy", method="fno", seed=0, size="smoke", factors=Factors((4, 8), (4, 8, 16)),
                      budget=Budget(epochs=1, max_train_s=60.0, batch_size=8))
    assert "scored_split" not in cell.identity()  # the committed reference's hashes stay valid
    assert dataclasses.replace(cell, scored_split="validation").config_hash != cell.config_hash
    assert "ladder" not in cell.identity()
    assert dataclasses.replace(cell, ladder=False).config_hash != cell.config_hash


class _Untouchable:
    """The test split handed to a trial: any use of it fails the trial."""

    def __getattr__(self, name):
        raise AssertionError(f"a tuning trial touched the test split (.{name})")

    def __len__(self):
        raise AssertionError("a tuning trial touched the test split (len)")


def test_smoke_study_scores_validation_only_resumes_and_its_best_runs(tmp_path, data_dir, monkeypatch, capsys):
    out = tmp_path / "study"
    args = ["tune", "--task", "darcy", "--method", "fno", "--trials", "3", "--size", "smoke", "--epochs", "1",
            "--seed", "0", "--threads", "1", "--out", str(out), "--data-dir", str(data_dir), "--quiet"]
    with monkeypatch.context() as m:  # a trial that predicted, timed or scored the test split would fail
        real = bench.cell.train_test
        m.setattr(bench.cell, "train_test", lambda *a, **k: (real(*a, **k)[0], _Untouchable()))
        for name in ("evaluate", "evaluate_rollouts", "time_inference", "ladder_for"):
            m.setattr(bench.cell, name, lambda *a, _n=name, **k: pytest.fail(f"a tuning trial called {_n}"))
        assert main(args) == 0
    printed = capsys.readouterr().out
    s = json.loads((out / "tune.json").read_text())
    assert (out / "study.db").is_file()
    assert s["trials"] == 3 and [r["status"] for r in s["table"]] == ["ok"] * 3
    assert {s["task"], s["method"], s["size"], s["sampler"]["name"], s["sampler"]["seed"]} == {
        "darcy", "fno", "smoke", "TPESampler", 0}
    assert s["budget"]["epochs"] == 1 and "3 TPE trials" in s["protocol"]
    best = s["best_variant"]
    assert f"best: {best}" in printed and s["best_val_rel_l2"] == min(r["val_rel_l2"] for r in s["table"])
    for row in s["table"]:
        rec = read_record(out / row["record"])
        assert {m["metric"] for m in rec["measurements"]} <= COSTS  # no test metric at all
        assert rec["validation"]["split"] == "validation" and rec["validation"]["k"] == [4, 8]
        # the harness's score is the method's own selection error of the kept weights
        assert math.isclose(rec["validation"]["value"], min(rec["train_log"]["val"]), rel_tol=1e-5)
        assert rec["validation"]["value"] == row["val_rel_l2"]
        assert parse_spec(row["variant"])[0] == "fno" and rec["config"]["scored_split"] == "validation"

    # the same command again: every trial is finished, none runs again
    monkeypatch.setattr(bench.tune, "run_cell", lambda cell: pytest.fail(f"trial {cell.method} ran again"))
    assert main(args) == 0
    assert json.loads((out / "tune.json").read_text())["table"] == s["table"]

    # the best variant string is a `bench run` method spec (one test factor: a shorter classical ladder)
    counts = run(RunConfig(tasks="darcy", methods=best, size="smoke", epochs=1, k_test=(4,), threads=1,
                           out=tmp_path / "run", data_dir=data_dir, progress=False), log=lambda s: None)
    assert counts == {"ok": 1}


def _fake_cell(calls, interrupt_at):
    """A trial that costs nothing: its score is a smooth function of the variant's parameters;
    the ``interrupt_at``-th call is interrupted (Ctrl-C) before it writes a record."""
    def run_cell(cell):
        calls.append(cell.method)
        if len(calls) == interrupt_at:
            raise KeyboardInterrupt
        p = parse_spec(cell.method)[1]
        score = (math.log10(float(p["lr"])) + 2.5) ** 2 + 0.01 * int(p["n_layers"]) + 1e-3 * int(p["width"]) / 16
        rec = failure_record(cell, "")
        rec.update(status="ok", error=None, validation={"value": score, "split": "validation"})
        write_json_atomic(cell.path, rec)
        return rec
    return run_cell


def _study(tmp_path, data_dir, monkeypatch, name, seed=0, trials=12, interrupt_at=0):
    calls: list[str] = []
    monkeypatch.setattr(bench.tune, "run_cell", _fake_cell(calls, interrupt_at))
    cfg = TuneConfig(task="darcy", method="fno", trials=trials, size="smoke", seed=seed, out=tmp_path / name,
                     data_dir=data_dir, epochs=1, threads=1)
    return cfg, calls


def test_same_seed_same_trials_also_across_an_interruption(tmp_path, data_dir, monkeypatch):
    # 12 trials: past TPE's 10 random start-up trials, so the model-based draws are covered too
    cfg, calls = _study(tmp_path, data_dir, monkeypatch, "a")
    first = [r["variant"] for r in tune(cfg, log=lambda s: None)["table"]]
    assert calls == first and len(set(first)) == 12

    cfg, calls = _study(tmp_path, data_dir, monkeypatch, "b", interrupt_at=7)  # killed inside trial 6
    with pytest.raises(KeyboardInterrupt):
        tune(cfg, log=lambda s: None)
    assert calls == first[:7]
    _, calls = _study(tmp_path, data_dir, monkeypatch, "b")
    again = tune(cfg, log=lambda s: None)
    assert calls == first[6:]  # trial 6 again with its parameters, then the rest; nothing finished reruns
    assert [r["variant"] for r in again["table"]] == first and [r["trial"] for r in again["table"]] == list(range(12))

    cfg, calls = _study(tmp_path, data_dir, monkeypatch, "c", seed=1, trials=3)
    assert [r["variant"] for r in tune(cfg, log=lambda s: None)["table"]] != first[:3]

    # a larger --trials extends the study; another configuration in the same directory is refused
    cfg, calls = _study(tmp_path, data_dir, monkeypatch, "c", seed=1, trials=4)
    assert len(tune(cfg, log=lambda s: None)["table"]) == 4 and len(calls) == 1
    cfg, calls = _study(tmp_path, data_dir, monkeypatch, "c", seed=2, trials=4)
    with pytest.raises(UsageError, match="another configuration"):
        tune(cfg, log=lambda s: None)


@pytest.mark.parametrize(("argv", "message"), [
    (["--method", "coarse_fv"], "has no search space; methods with one: fno"),
    (["--method", "conformal"], "has no search space"),
    (["--method", "nope"], "unknown method 'nope'; valid:"),
    (["--trials", "0"], "--trials must be at least 1"),
    (["--task", "nope"], "unknown task 'nope'; valid:"),
    (["--method", "fno,unet"], "tunes one method"),
    (["--epochs", "0"], "--epochs must be at least 1"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, capsys, argv, message):
    base = {"--task": "darcy", "--method": "fno", "--trials": "3"}
    base.update(dict(zip(argv[::2], argv[1::2])))
    out = tmp_path / "study"
    args = ["tune", *[x for kv in base.items() for x in kv], "--size", "smoke", "--out", str(out),
            "--data-dir", str(tmp_path / "data")]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "data").exists()


def test_missing_optuna_names_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` fails as if not installed
    assert main(["tune", "--task", "darcy", "--method", "fno", "--size", "smoke", "--out", str(tmp_path / "s"),
                 "--data-dir", str(tmp_path / "data")]) == 2
    assert "pip install -e '.[tune]'" in capsys.readouterr().err
