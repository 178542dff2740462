"""End-to-end tier: the matrix runner on the smoke size, resume, isolation, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.metrics import METRICS
from bench.names import build_method
from bench.records import read_record, read_results
from bench.runner import RunConfig, run
from nskernel import Factors, Metric, Prediction
from nskernel.errors import UsageError
from tasks import TASKS

FAST = "mean,coarse_fv"


def cfg(tmp_path, data_dir, methods=FAST, **kw) -> RunConfig:
    kw.setdefault("out", tmp_path / "run")
    return RunConfig(tasks="darcy", methods=methods, size="smoke", data_dir=data_dir, progress=False, **kw)


SPEC = TASKS["darcy"].sized("smoke").spec()


def task_unmet(metric: Metric) -> str | None:
    """What the task (not the method) lacks for ``metric``."""
    full = Prediction(mean=np.zeros(1), var=np.ones(1), samples=np.zeros((2, 1)))
    return metric.unmet(SPEC, full, probabilistic=True)


def test_smoke_matrix_end_to_end(tmp_path, data_dir):
    counts = run(cfg(tmp_path, data_dir, methods="fno,coarse_fv,mean"), log=lambda s: None)
    assert counts == {"ok": 3}
    df = read_results(tmp_path / "run")
    assert set(df.method) == {"fno", "coarse_fv", "mean"}
    for method in ("fno", "coarse_fv", "mean"):
        sub = df[(df.method == method) & (df.metric == "rel_l2")]
        assert sorted(sub.k) == [4, 8, 16]
        assert sub.set_index("k").loc[16, "unseen"]
        assert (sub.value > 0).all() and (sub.status == "ok").all()
        # every metric that applies appears for every k (a value or an explicit n/a), and
        # every per-cell cost once; Darcy is steady, so no rollout metric appears
        per_k = df[(df.method == method) & df.k.notna()]
        applies = [m for m in METRICS.values() if not task_unmet(m)]
        for k in (4, 8, 16):
            assert {m.name for m in applies if m.per_k} <= set(per_k[per_k.k == k].metric)
        per_cell = df[(df.method == method) & df.k.isna()]
        assert {m.name for m in applies if not m.per_k} == set(per_cell.metric)
        assert not {m.name for m in METRICS.values() if task_unmet(m)} & set(df[df.method == method].metric)
    assert (df[(df.metric == "nll")].status == "n/a").all()  # no probabilistic method here
    rec = read_record(next((tmp_path / "run" / "records").glob("darcy__fno__seed0.json")))
    for key in ("config_hash", "data_checksum", "git_commit", "versions", "device", "cpu", "started", "finished"):
        assert rec.get(key), key
    assert rec["train_log"]["epochs"] >= 1


def test_same_seed_same_numbers(tmp_path, data_dir):
    # Budgets count steps: the same command gives the same numbers; the time cap is a
    # safety guard far above this small FNO's training (a cell it stops is `truncated`).
    methods = "fno:width=8,n_layers=2,n_modes=6,mean"
    a = run(cfg(tmp_path, data_dir, methods=methods, out=tmp_path / "a"), log=lambda s: None)
    b = run(cfg(tmp_path, data_dir, methods=methods, out=tmp_path / "b"), log=lambda s: None)
    assert a == b == {"ok": 2}
    acc = ["rel_l2", "max_principle"]
    da, db = (read_results(tmp_path / d) for d in "ab")
    da, db = da[da.metric.isin(acc)], db[db.metric.isin(acc)]
    pd.testing.assert_frame_equal(da.reset_index(drop=True), db.reset_index(drop=True))


def test_failure_isolation_and_exit_code(tmp_path, data_dir):
    methods = "mean,tests.plugins:Raising,tests.plugins:NaNPredictor"
    counts = run(cfg(tmp_path, data_dir, methods=methods), log=lambda s: None)
    assert counts == {"ok": 1, "failed": 1, "diverged": 1}
    df = read_results(tmp_path / "run")
    failed = df[df.method == "tests.plugins:Raising"]
    assert list(failed.status) == ["failed"] and "boom" in failed.reason.iloc[0]
    assert list(df[df.method == "tests.plugins:NaNPredictor"].status) == ["diverged"]
    rc = main(["run", "--tasks", "darcy", "--methods", methods, "--size", "smoke", "--out", str(tmp_path / "run"),
               "--data-dir", str(data_dir), "--no-report", "--quiet"])
    assert rc == 1


def test_timeout_is_recorded_and_run_goes_on(tmp_path, data_dir):
    counts = run(cfg(tmp_path, data_dir, methods="tests.plugins:Sleeper,mean", timeout_s=8.0), log=lambda s: None)
    assert counts == {"timeout": 1, "ok": 1}


def test_interrupted_run_resumes_only_missing_cells(tmp_path, data_dir):
    c = cfg(tmp_path, data_dir, methods="mean,tests.plugins:Interrupting,coarse_fv")
    with pytest.raises(KeyboardInterrupt):
        run(c, log=lambda s: None)
    records = tmp_path / "run" / "records"
    first = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert list(first) == ["darcy__mean__seed0.json"]  # nothing half-written
    assert not list(records.glob(".*tmp"))
    counts = run(cfg(tmp_path, data_dir, methods="mean,coarse_fv"), log=lambda s: None)
    assert counts == {"ok": 2}
    assert (records / "darcy__mean__seed0.json").stat().st_mtime_ns == first["darcy__mean__seed0.json"]
    # --overwrite recomputes
    run(cfg(tmp_path, data_dir, methods="mean", overwrite=True), log=lambda s: None)
    assert (records / "darcy__mean__seed0.json").stat().st_mtime_ns != first["darcy__mean__seed0.json"]


def test_corrupt_record_is_recomputed(tmp_path, data_dir):
    run(cfg(tmp_path, data_dir, methods="mean"), log=lambda s: None)
    path = tmp_path / "run" / "records" / "darcy__mean__seed0.json"
    path.write_text(path.read_text()[:50])  # truncated
    with pytest.warns(UserWarning, match="unreadable record"):
        counts = run(cfg(tmp_path, data_dir, methods="mean"), log=lambda s: None)
    assert counts == {"ok": 1}
    json.loads(path.read_text())


def test_budget_overrides_are_part_of_each_cell_and_recorded(tmp_path, data_dir):
    from dataclasses import replace

    from bench.cell import CellConfig
    from bench.config import BUDGETS
    from bench.report.load import load_run
    from bench.report.markdown import provenance_lines

    base = cfg(tmp_path, data_dir, methods="fno:width=8,n_layers=2,n_modes=6")
    assert run(replace(base, epochs=1), log=lambda s: None) == {"ok": 1}
    rec = read_record(next((tmp_path / "run" / "records").glob("darcy__fno*.json")))
    assert rec["budget"]["epochs"] == 1 and rec["budget"]["max_train_s"] == BUDGETS["smoke"].max_train_s
    assert rec["train_log"]["epochs"] == 1 and rec["config"]["budget"] == {"mode": "epochs", "epochs": 1,
                                                                          "batch_size": 8}
    assert "- budget mode and training budget per neural method: 1 epochs (batch 8); wall-clock safety cap 60 s" \
        in "\n".join(provenance_lines(load_run(tmp_path / "run")))
    with pytest.raises(UsageError, match="different configuration"):  # the size's own budget is another cell
        run(base, log=lambda s: None)
    # The budget's mode and amount are part of a cell's identity; its safety cap is not.
    plain = CellConfig(task="darcy", method="mean", seed=0, size="smoke", factors=Factors((4, 8), (4, 8, 16)),
                       budget=BUDGETS["smoke"])
    capped = replace(plain, budget=BUDGETS["smoke"].override(max_train_s=5.0))
    assert capped.config_hash == plain.config_hash
    assert replace(plain, budget=BUDGETS["smoke"].override(flops=1e9)).config_hash != plain.config_hash
    # The committed reference run was written by this identity: its records' hashes match.
    ref = read_record(Path(__file__).parents[1] / "results/reference-smoke/records/darcy__mean__seed0.json")
    assert plain.config_hash == ref["config_hash"]


def test_changed_configuration_is_refused(tmp_path, data_dir):
    run(cfg(tmp_path, data_dir, methods="mean"), log=lambda s: None)
    with pytest.raises(UsageError, match="different configuration"):
        run(cfg(tmp_path, data_dir, methods="mean", k_train=(4,)), log=lambda s: None)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "nope"], "unknown task 'nope'; valid: convection, darcy, kuramoto, turbulence"),
        (["--methods", "fnoo"], "unknown method 'fnoo'; valid:"),
        (["--methods", "fno:n_mode=3"],
         "has no parameter 'n_mode'; valid: lr, weight_decay, schedule, augment, amp, n_modes"),
        (["--methods", "fno:n_modes=abc"], "fno:n_modes=abc"),
        (["--methods", "coarse_fv:mean=median"], "median"),
        (["--methods", "coarse_fv:nope=1"], "unknown parameter"),
        (["--k-test", "4,5"], "k=5 does not divide"),
        (["--k-test", "4,2"], "no targets for k=2"),
        (["--methods", "'zz*'"], "matches no method"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, data_dir, capsys, args, message):
    out = tmp_path / "never"
    rc = main(["run", "--size", "smoke", "--out", str(out), "--data-dir", str(data_dir), "--quiet", "--no-report",
               *args])
    assert rc == 2
    assert message.strip("'") in capsys.readouterr().err.replace("'zz*'", "zz*") or message in capsys.readouterr().err
    assert not out.exists()


def test_bad_size_is_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--size", "huge"])
    assert e.value.code == 2 and "smoke" in capsys.readouterr().err


def test_unwritable_run_dir_is_a_clear_error(tmp_path, data_dir):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere: permission errors cannot be provoked")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    rc = main(["run", "--tasks", "darcy", "--methods", "mean", "--size", "smoke", "--out", str(ro / "run"),
               "--data-dir", str(data_dir), "--quiet", "--no-report"])
    assert rc == 2


def test_process_pool_gives_the_same_numbers_as_inline(tmp_path, data_dir):
    run(cfg(tmp_path, data_dir, methods="mean,coarse_fv", out=tmp_path / "inline"), log=lambda s: None)
    counts = run(cfg(tmp_path, data_dir, methods="mean,coarse_fv", out=tmp_path / "pool", jobs=2, threads=1),
                 log=lambda s: None)
    assert counts == {"ok": 2}
    acc = ["rel_l2", "max_principle"]
    a, b = (read_results(tmp_path / d) for d in ("inline", "pool"))
    a, b = (x[x.metric.isin(acc)].sort_values(["method", "k", "metric"]).reset_index(drop=True) for x in (a, b))
    pd.testing.assert_frame_equal(a, b)


def test_a_saved_model_reloads_and_reproduces_its_record(tmp_path, data_dir, capsys):
    """`bench predict` reloads a cell's checkpoint and re-scores it to the record's
    rel_l2; `load_method` gives the fitted method; a non-neural cell has no model; a
    checkpoint made for other hyperparameters is refused."""
    from bench.predict import load_method

    methods = "fno:width=8,n_layers=2,n_modes=6,fno_ensemble:n_members=2,width=8,mean"
    assert run(cfg(tmp_path, data_dir, methods=methods), log=lambda s: None) == {"ok": 3}
    out = tmp_path / "run"
    for m in ("fno:width=8,n_layers=2,n_modes=6", "fno_ensemble:n_members=2,width=8"):
        assert main(["predict", str(out), "--task", "darcy", "--method", m, "--data-dir", str(data_dir)]) == 0
        assert "matches the record" in capsys.readouterr().out
    method, spec = load_method(out, "darcy", "fno:width=8,n_layers=2,n_modes=6")
    x = np.random.default_rng(0).random((2, 1, *spec.fine_shape))
    assert method.predict(x, 8).mean.shape == (2, 1, *spec.coarse_shape(8))
    assert main(["predict", str(out), "--task", "darcy", "--method", "mean", "--data-dir", str(data_dir)]) == 2
    assert "saved no model" in capsys.readouterr().err
    rec = read_record(next((out / "records").glob("darcy__fno_width*.json")))
    _, other = build_method("fno:width=16,n_layers=2,n_modes=6")
    with pytest.raises(ValueError, match="another hyperparameters"):
        other.restore(out / rec["checkpoint"], spec, method._ctx)


def test_k1_scores_the_fine_solution(tmp_path, data_dir):
    """`--k-test 1,...` scores the fine-grid target (the fine solution itself): the
    classical coarse solver at k = 1 is the fine solver, so its error vanishes; with
    `--k-train 1` a method trains on the fine solution."""
    c = cfg(tmp_path, data_dir, methods="coarse_fv,mean", k_train=(1,), k_test=(1, 4))
    assert run(c, log=lambda s: None) == {"ok": 2}
    df = read_results(tmp_path / "run")
    fine = df[(df.metric == "rel_l2") & (df.k == 1)].set_index("method").value
    assert fine["coarse_fv"] < 1e-6 and 0.05 < fine["mean"] < 1.0
    assert bool(df[(df.metric == "rel_l2") & (df.k == 4)].set_index("method").loc["mean", "unseen"])


def test_equal_error_rows_and_the_frontier_figure(tmp_path, data_dir):
    """Every learned and classical cell is put against the classical ladder at every k:
    a value or n/a with the reason; the report draws the error-cost frontier."""
    from bench.report import write_report

    c = RunConfig(tasks="darcy,turbulence", methods="fno:width=8,n_layers=2,n_modes=6,coarse_fv,persistence",
                  size="smoke", data_dir=data_dir, progress=False, out=tmp_path / "run")
    assert run(c, log=lambda s: None) == {"ok": 5, "n/a": 1}  # persistence does not apply to Darcy
    df = read_results(tmp_path / "run")
    for metric in ("equal_error_cost_ratio", "breakeven_solves", "ladder_error_at_cost"):
        rows = df[df.metric == metric]
        assert len(rows) == 5 * 3  # 5 ok cells, 3 factors each
        assert ((rows.status == "ok") & rows.value.notna() | (rows.status == "n/a") & (rows.reason != "")).all()
    assert (df[(df.metric == "equal_error_cost_ratio")].status == "ok").any()
    data_s = df[df.metric == "data_s"].set_index(["task", "method"]).value
    assert data_s[("darcy", "coarse_fv")] == 0 == data_s[("turbulence", "persistence")]  # nothing learned from data
    n_data = 16 + 8  # smoke: training + validation samples
    fine = df[(df.metric == "fine_s") & (df.task == "darcy")].iloc[0]
    assert data_s[("darcy", "fno:width=8,n_layers=2,n_modes=6")] == pytest.approx(fine.value / fine.n * n_data)
    assert sorted(p.name.split("__")[0] for p in (tmp_path / "run" / "ladder").glob("*.json")) == ["darcy",
                                                                                                  "turbulence"]
    out = write_report(tmp_path / "run", tmp_path / "report")
    assert (out / "frontier.png").exists()


def test_no_ladder_records_the_equal_error_rows_as_not_measured(tmp_path, data_dir):
    """``--no-ladder``: no ladder is measured or saved, the three equal-error rows are n/a
    saying why, a run with the ladder refuses to resume the record, and every other number
    is the one a run with the ladder records."""
    c = cfg(tmp_path, data_dir, methods="coarse_fv", ladder=False)
    assert run(c, log=lambda s: None) == {"ok": 1}
    df = read_results(tmp_path / "run")
    assert not (tmp_path / "run" / "ladder").exists()
    rows = df[df.metric.isin(["equal_error_cost_ratio", "breakeven_solves", "ladder_error_at_cost"])]
    assert len(rows) == 3 * 3 and (rows.status == "n/a").all() and rows.reason.str.contains("--no-ladder").all()
    with pytest.raises(UsageError, match="different configuration"):  # never resumed as if measured
        run(dataclasses.replace(c, ladder=True), log=lambda s: None)
    with_ladder = dataclasses.replace(c, ladder=True, out=tmp_path / "with")
    assert run(with_ladder, log=lambda s: None) == {"ok": 1}
    other = read_results(tmp_path / "with")
    mine, theirs = (d[d.metric == "rel_l2"].sort_values("k").value.to_numpy() for d in (df, other))
    assert len(mine) == 3 and (mine == theirs).all()
