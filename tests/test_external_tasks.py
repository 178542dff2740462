"""External tasks plug in like external methods: ``--tasks package.module:Class`` and the
entry-point group ``neuroscale_bench.tasks``. The plugin task `tests.plugin_tasks.Heat`
runs through the harness like a built-in one: plan, data cache, cells (inline and in
worker processes), its own metric in ``results.csv``, the report, ``bench predict``."""

from __future__ import annotations

import warnings
from importlib.metadata import EntryPoint

import pytest

import bench.names
from bench.catalog import include_tasks, metric_catalog, metric_info
from bench.cli import main
from bench.data import config_hash, load_or_generate, task_config
from bench.names import TASK_ENTRY_POINT_GROUP, build_task, resolve_tasks, split_list, task_problems
from bench.records import read_record, read_results
from bench.runner import RunConfig, run
from nskernel import Prediction
from nskernel.errors import UsageError
from tasks import NOT_IN_ALL, TASKS
from tests.plugin_tasks import HEAT_MEAN_DRIFT, Heat

HEAT = "tests.plugin_tasks:Heat"
FNO = "fno:width=8,n_layers=2,n_modes=4"
BUILT_IN = ", ".join(sorted(TASKS))


@pytest.fixture(autouse=True)
def fresh_process_state(monkeypatch):
    """Each test starts as a new process would: no external task loaded yet, entry points
    read again (and read again after the test, so a faked one does not leak)."""
    monkeypatch.setattr(bench.names, "_EXTERNAL_TASKS", {})
    bench.names.entry_point_tasks.cache_clear()
    yield
    bench.names.entry_point_tasks.cache_clear()


def fake_entry_points(monkeypatch, *specs: tuple[str, str]) -> None:
    """Publish ``(name, "module:Class")`` under the task group, as an installed package would."""
    real = bench.names.entry_points

    def entry_points(**kw):
        if kw.get("group") == TASK_ENTRY_POINT_GROUP:
            return [EntryPoint(name, value, TASK_ENTRY_POINT_GROUP) for name, value in specs]
        return real(**kw)

    monkeypatch.setattr(bench.names, "entry_points", entry_points)
    bench.names.entry_point_tasks.cache_clear()


def test_the_plugin_task_satisfies_the_protocol():
    assert task_problems(Heat) == []
    assert all(task_problems(cls) == [] for cls in TASKS.values())
    task = Heat.sized("smoke")
    ds = task.generate(3, seed=0)
    assert ds.inputs.shape == (3, 1, 32, 32) and sorted(ds.targets) == [4, 8, 16]
    assert (task.generate(5, seed=0).inputs[:3] == ds.inputs).all()  # the prefix property
    assert HEAT_MEAN_DRIFT.fn is not None
    for k in (4, 8, 16):  # the truth keeps the conserved mean, at every k
        assert HEAT_MEAN_DRIFT.fn(Prediction(ds.targets[k]), ds.targets[k], ds.inputs, k, task.spec()).max() < 1e-6


def test_an_external_task_runs_through_the_harness_like_a_built_in(tmp_path, data_dir, capsys):
    """Plan, data, cells, its own metric in results.csv, the report, `bench predict`."""
    from bench.predict import load_method
    from bench.report import write_report

    out = tmp_path / "run"
    cfg = RunConfig(tasks=HEAT, methods=f"mean,coarse_fv,{FNO}", size="smoke", data_dir=data_dir, progress=False,
                    out=out)
    assert run(cfg, log=lambda s: None) == {"ok": 3}
    df = read_results(out)
    assert set(df.task) == {HEAT}
    drift = df[df.metric == "heat_mean_drift"]
    assert len(drift) == 3 * 3 and (drift.status == "ok").all()  # 3 methods x 3 factors
    by = drift.set_index(["method", "k"]).value
    assert all(by[("coarse_fv", k)] < 1e-6 < by[("mean", k)] for k in (4, 8, 16))  # FD keeps the mean
    err = df[df.metric == "rel_l2"].set_index(["method", "k"]).value
    assert all(err[("coarse_fv", k)] < err[("mean", k)] for k in (4, 8, 16))
    assert {"speedup", "equal_error_cost_ratio"} <= set(df.metric)  # costs and the classical ladder
    assert (out / "records" / "tests.plugin_tasks_Heat__mean__seed0.json").exists()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = write_report(out, tmp_path / "report")
    assert not [str(w.message) for w in caught if "failed" in str(w.message)]
    board = (report / "leaderboard.md").read_text()
    assert HEAT in board and "heat_mean_drift" in board

    bench.names._EXTERNAL_TASKS.clear()  # as a new process: `bench predict` loads the task by its name
    assert main(["predict", str(out), "--task", HEAT, "--method", FNO, "--data-dir", str(data_dir)]) == 0
    assert "matches the record" in capsys.readouterr().out
    method, spec = load_method(out, HEAT, FNO)
    assert spec.name == "heat" and method.predict(Heat.sized("smoke").generate(2, 1).inputs, 8).mean.shape == (
        2, 1, 4, 4)


def test_a_task_variant_runs_in_worker_processes(tmp_path, data_dir):
    """``module:Class:field=value`` like a built-in variant; the spawned workers import the
    plugin module by the name in the cell's config; the data cache keys on its fields."""
    variant = f"{HEAT}:t=0.002,nu=2"
    assert split_list(f"darcy,{variant}") == ["darcy", variant]
    _, task = build_task(variant, "smoke")
    assert (task.t, task.nu) == (0.002, 2.0)
    assert config_hash(task_config(task)) != config_hash(task_config(Heat.sized("smoke")))
    cfg = RunConfig(tasks=variant, methods="mean,coarse_fv", size="smoke", data_dir=data_dir, progress=False,
                    out=tmp_path / "run", jobs=2, threads=1)
    assert run(cfg, log=lambda s: None) == {"ok": 2}
    df = read_results(tmp_path / "run")
    assert set(df.task) == {variant} and "heat_mean_drift" in set(df.metric)
    rec = read_record(next((tmp_path / "run" / "records").glob("*coarse_fv*.json")))
    assert rec["data_checksum"] == load_or_generate(task, data_dir)[1]


def test_a_task_published_under_the_entry_point_group(monkeypatch, tmp_path, data_dir):
    """An installed package's task: found by name, in ``all`` and patterns, its metrics in
    the catalog without loading anything, runs and reports like a built-in."""
    from bench.report import write_report

    assert "heat_mean_drift" not in metric_catalog()
    fake_entry_points(monkeypatch, ("heat", HEAT))
    assert resolve_tasks("all") == [*(t for t in TASKS if t not in NOT_IN_ALL), "heat"]
    assert resolve_tasks("h*") == ["heat"]
    assert metric_info("heat_mean_drift") is HEAT_MEAN_DRIFT  # a report of a run needs no more
    assert build_task("heat:resolution=16", "smoke")[1] == Heat(resolution=16)
    with pytest.raises(UsageError, match=f"unknown task 'hot'; valid: {BUILT_IN.replace('darcy', 'darcy, heat')}"):
        resolve_tasks("hot")
    out = tmp_path / "run"
    cfg = RunConfig(tasks="heat", methods="mean", size="smoke", data_dir=data_dir, progress=False, out=out)
    assert run(cfg, log=lambda s: None) == {"ok": 1}  # inline: spawned workers would not see the fake
    assert "heat_mean_drift" in set(read_results(out).metric)
    assert "heat_mean_drift" in (write_report(out, tmp_path / "report") / "leaderboard.md").read_text()
    assert not bench.names.external_tasks()  # nothing loaded as module:Class


@pytest.mark.parametrize("published, match", [
    (("warm", HEAT), "loads a task named 'heat': name the entry point 'heat'"),
    (("darcy", HEAT), "clashes with the built-in task"),
    (("gone", "no_such_module_xyz:Task"), "cannot load task entry point 'gone'.*ModuleNotFoundError"),
    (("not_a_task", "tests.plugin_tasks:NotATask"), "does not satisfy the nskernel.Task protocol"),
])
def test_bad_entry_points_are_refused_with_the_reason(monkeypatch, published, match):
    fake_entry_points(monkeypatch, published)
    with pytest.raises(UsageError, match=match):
        resolve_tasks("darcy")
    with pytest.warns(UserWarning, match=match):  # reports and `bench list` go on without it
        assert "max_principle" in metric_catalog()


@pytest.mark.parametrize("spec, match", [
    ("nosuch", f"unknown task 'nosuch'; valid: {BUILT_IN}, or module:Class"),
    ("tests.plugin_tasks:Nope", "cannot load external task 'tests.plugin_tasks:Nope'.*no attribute 'Nope'"),
    ("no_such_module_xyz:Task", "cannot load external task 'no_such_module_xyz:Task'"),
    ("tests.plugin_tasks:heat_fine", "it is a function, not a class"),
    ("tests.plugin_tasks:NotATask", r"it is not frozen .*; no class attribute 'metrics' .*; "
                                    r"no method\(s\) generate, with_threads$"),
    ("tests.plugin_tasks:NamedDarcy", "is named 'darcy', like the task tasks.darcy.task.Darcy"),
    ("tests.plugin_tasks:ClaimsRelL2", "its metric 'rel_l2' clashes with another metric"),
    (f"{HEAT}:nope=1", "task 'tests.plugin_tasks:Heat' has no field 'nope'; valid: resolution, nu, t, n_train"),
    (f"{HEAT}:resolution=20", "resolution must be a positive multiple of 16"),
])
def test_bad_external_tasks_are_refused_with_the_reason(spec, match):
    with pytest.raises(UsageError, match=match):
        resolve_tasks(spec)
        build_task(spec, "smoke")


def test_a_bad_task_exits_2_before_anything_is_written(tmp_path, data_dir, capsys):
    rc = main(["run", "--tasks", "tests.plugin_tasks:NotATask", "--methods", "mean", "--size", "smoke", "--out",
               str(tmp_path / "run"), "--data-dir", str(data_dir), "--no-report", "--quiet"])
    assert rc == 2 and "nskernel.Task protocol" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_catalog_knows_an_external_tasks_metrics_once_it_is_loaded():
    """results.csv names a task, not its metrics: a process that reads the results of a
    ``module:Class`` task it has not loaded (a report, `bench compare`) includes the run's
    tasks first; a task that cannot be loaded is named with the reason."""
    with pytest.raises(UsageError, match="include_tasks"):
        metric_info("heat_mean_drift")
    problems = include_tasks(["darcy", f"{HEAT}:t=0.002", "gone_module_xyz:Task"])
    assert list(problems) == ["gone_module_xyz:Task"] and "cannot load" in problems["gone_module_xyz:Task"]
    assert metric_info("heat_mean_drift") is HEAT_MEAN_DRIFT
    assert "heat_mean_drift" in metric_catalog()


def test_a_new_process_reports_and_compares_a_run_of_a_module_class_task(tmp_path, data_dir):
    """`bench report` and `bench compare` in a fresh interpreter load the task named in
    results.csv, so its own metric is known there too."""
    import subprocess
    import sys

    from bench.runner import RunConfig, run

    run(RunConfig(tasks="tests.plugin_tasks:Heat", methods="mean", size="smoke", data_dir=data_dir,
                  out=tmp_path / "run", progress=False), log=lambda s: None)
    code = ("import sys; from bench.report import write_report; from bench.compare import compare; "
            "write_report(sys.argv[1], sys.argv[2]); compare(sys.argv[1], sys.argv[1])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run"), str(tmp_path / "rep")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "heat_mean_drift" in (tmp_path / "rep" / "aggregate.csv").read_text()
