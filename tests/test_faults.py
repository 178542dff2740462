"""Faults around the cells: a killed run, concurrent runs, stale locks, running out of
memory, a dead worker, records that fail their schema, bad options, unwritable paths.

Each test removes nothing but provokes the fault for real (SIGKILL, a second process,
an 8 PB allocation) and fails if the protection it names is taken away. Faults inside a
method (exceptions, NaN, timeouts, Ctrl-C) are in tests/test_runner.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import SCHEMA_VERSION, lock
from bench.catalog import metric_info
from bench.cli import main
from bench.lock import RunDirLocked, RunLock
from bench.records import read_record, read_results
from bench.runner import RunConfig, run

REPO = Path(__file__).resolve().parent.parent
PLUG = "tests.fault_plugins"
SCALED = "tests.plugins:Scaled:factor=2"  # a second quick, correct method
QUIET = {"log": lambda s: None}


def cfg(tmp_path: Path, data_dir: Path, methods: str, **kw) -> RunConfig:
    kw.setdefault("out", tmp_path / "run")
    return RunConfig(tasks="darcy", methods=methods, size="smoke", data_dir=data_dir, progress=False, **kw)


def cli_args(out: Path, data_dir: Path, methods: str = "mean") -> list[str]:
    return ["run", "--tasks", "darcy", "--methods", methods, "--size", "smoke", "--out", str(out),
            "--data-dir", str(data_dir), "--quiet", "--no-report"]


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    files = (p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in files}


def one(folder: Path, pattern: str) -> Path:
    (path,) = folder.glob(pattern)
    return path


# --------------------------------------------------------------------------- SIGKILL
def test_sigkill_mid_training_resumes_from_the_checkpoint_and_ends_with_the_same_scores(tmp_path, data_dir):
    """Kill -9 a run while a neural cell trains (after its first epoch checkpoint): the
    same command resumes the training from that checkpoint, and the cell's scores equal
    those of an uninterrupted run, bit for bit."""
    method = "fno:width=8,n_layers=2,n_modes=6"
    # the safety cap far above 40 tiny epochs even on a loaded machine: this test is about resuming
    budget = ["--epochs", "40", "--checkpoint-every", "0", "--max-train-s", "900"]
    base = [*cli_args(tmp_path / "whole", data_dir, method), *budget]
    assert main(base) == 0
    out = tmp_path / "killed"
    argv = [*cli_args(out, data_dir, method), *budget]
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bench", *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=err)
    ckpt, t0 = out / "checkpoints", time.monotonic()
    try:
        while not any(ckpt.glob("*/train-net0.pt")):
            assert proc.poll() is None, "the run ended before its first checkpoint: " + \
                (tmp_path / "stderr.txt").read_text()[-2000:]
            assert time.monotonic() - t0 < 300, "no training checkpoint appeared"
            time.sleep(0.01)
        time.sleep(0.3)  # a few more epochs
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not list((out / "records").glob("*.json")), "the kill came too late: the cell had finished"
    assert main(argv) == 0
    rec = read_record(one(out / "records", "darcy__fno*.json"))
    assert rec["train_log"]["resumed_at_epoch"] >= 1 and not list(ckpt.glob("*/train-*.pt"))  # cleaned up
    whole = read_results(tmp_path / "whole").drop(columns=["reason"])
    resumed = read_results(out).drop(columns=["reason"])
    keep = whole.metric.map(lambda m: metric_info(m).group != "cost")  # timings and what derives from them
    pd.testing.assert_frame_equal(whole[keep].reset_index(drop=True), resumed[keep].reset_index(drop=True))


def test_sigkill_while_writing_a_record_leaves_no_partial_record_and_resume_runs_only_the_rest(tmp_path, data_dir):
    """Kill -9 the run while it writes a (large) record: no record under its real name is
    partial (atomic writes); the lock it held is stale; re-running finishes only the
    missing cells and leaves the finished one untouched."""
    out, methods = tmp_path / "run", f"mean,{PLUG}:HugeRecord,{SCALED}"
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "bench", *cli_args(out, data_dir, methods)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=err)
    records, t0 = out / "records", time.monotonic()
    try:
        while True:  # kill as soon as any byte of the big record exists, temp file or not
            try:
                if any(p.stat().st_size > 0 for p in records.glob("*HugeRecord*")):
                    break
            except FileNotFoundError:  # renamed between glob and stat
                pass
            assert proc.poll() is None, f"run ended (rc {proc.returncode}) before the kill: " + \
                (tmp_path / "stderr.txt").read_text()[-2000:]
            assert time.monotonic() - t0 < 300, "the big record never started"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert "darcy__mean__seed0.json" in finished and not any("Scaled" in n for n in finished)  # killed mid-way
    for name in finished:
        read_record(records / name)  # parses and validates: nothing half-written under a real name
    assert json.loads((out / ".lock").read_text())["pid"] == proc.pid  # the dead run's lock is still there

    counts = run(cfg(tmp_path, data_dir, methods), **QUIET)
    assert counts == {"ok": 3}
    assert (records / "darcy__mean__seed0.json").stat().st_mtime_ns == finished["darcy__mean__seed0.json"]
    assert len(read_record(one(records, "*HugeRecord*.json"))["blob"]) == 1_500_000
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]  # the killed run's debris is gone
    assert set(read_results(out).method) == {"mean", f"{PLUG}:HugeRecord", SCALED}


# --------------------------------------------------------------------------- two runs, one run directory
def test_second_run_is_refused_while_another_holds_the_run_dir_and_proceeds_once_it_is_killed(
        tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from bench.lock import RunLock; RunLock(sys.argv[1]).acquire(); "
                               "print('held', flush=True); time.sleep(600)", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(cli_args(out, data_dir)) == 2
        err = capsys.readouterr().err
        assert "is in use by another run" in err and f"pid {holder.pid} " in err, err
        assert [p.name for p in out.iterdir()] == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert main(cli_args(out, data_dir)) == 0  # SIGKILL released it: a stale lock blocks nothing
    assert read_record(out / "records" / "darcy__mean__seed0.json")["status"] == "ok"


def test_the_lock_is_held_from_start_to_end_of_a_run(tmp_path, data_dir, monkeypatch):
    """A second run started from inside a running cell (same directory) is refused."""
    monkeypatch.setenv("NEUROSCALE_DATA", str(data_dir))
    out = tmp_path / "run"
    assert run(cfg(tmp_path, data_dir, f"{PLUG}:NestedRun:out={out}"), **QUIET) == {"ok": 1}
    assert read_record(one(out / "records", "*NestedRun*.json"))["nested_rc"] == 2
    assert not (out / "records" / "darcy__mean__seed0.json").exists()


@pytest.fixture
def no_flock(monkeypatch):
    """A filesystem without flock (e.g. Lustre without -o flock)."""

    def unsupported(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock.fcntl, "flock", unsupported)


def test_without_flock_a_live_holder_refuses_and_a_dead_one_is_stale(tmp_path, no_flock):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock_file = run_dir / lock.LOCK_NAME

    def holder(pid: int, host: str = socket.gethostname()) -> None:
        lock_file.write_text(json.dumps({"pid": pid, "host": host, "started": "earlier", "command": "bench run"}))

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        holder(sleeper.pid)
        with pytest.raises(RunDirLocked, match=f"pid {sleeper.pid} "):
            RunLock(run_dir).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    with RunLock(run_dir):  # the same pid, now dead: stale, taken over
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
        with pytest.raises(RunDirLocked):  # and held against a second taker
            RunLock(run_dir).acquire()
    assert lock_file.read_text() == ""  # released
    holder(sleeper.pid, host="another-node")  # cannot be checked from here: refused, with the way out
    with pytest.raises(RunDirLocked, match="if that run is dead, delete"):
        RunLock(run_dir).acquire()


# --------------------------------------------------------------------------- time budget
def test_a_cell_that_never_checks_its_deadline_is_stopped_at_the_hard_limit(tmp_path, data_dir):
    """test_runner's timeout test passes on the cooperative deadline alone (its method
    returns after 60 s); here the method would block for 90 s, so only the hard limit
    (SIGALRM at timeout + 25%) can end the cell in time."""
    assert run(cfg(tmp_path, data_dir, f"{PLUG}:Hang", timeout_s=3.0), **QUIET) == {"timeout": 1}
    rec = read_record(one(tmp_path / "run" / "records", "*Hang*.json"))
    assert "hard time limit" in rec["error"] and rec["wall_s"] < 30.0, (rec["error"], rec["wall_s"])


# --------------------------------------------------------------------------- memory
def test_out_of_memory_in_a_cell_is_recorded_failed_and_the_others_finish(tmp_path, data_dir):
    methods = f"{PLUG}:NumpyOOM,mean,{PLUG}:TorchOOM"
    assert run(cfg(tmp_path, data_dir, methods), **QUIET) == {"ok": 1, "failed": 2}
    for name in ("NumpyOOM", "TorchOOM"):
        rec = read_record(one(tmp_path / "run" / "records", f"*{name}*.json"))
        assert rec["status"] == "failed" and rec["error"].startswith("out of memory: "), rec["error"][:300]
    df = read_results(tmp_path / "run")
    assert set(df[df.status == "failed"].method) == {f"{PLUG}:NumpyOOM", f"{PLUG}:TorchOOM"}


def test_a_worker_killed_by_the_oom_killer_fails_only_its_own_cell(tmp_path, data_dir):
    """In a process pool, one dead worker breaks the whole pool; only the cell that
    killed it may be recorded failed."""
    methods = f"{PLUG}:SelfKill,mean,{SCALED}"
    counts = run(cfg(tmp_path, data_dir, methods, jobs=2, threads=1), **QUIET)
    assert counts == {"ok": 2, "failed": 1}
    rec = read_record(one(tmp_path / "run" / "records", "*SelfKill*.json"))
    assert "killed by SIGKILL" in rec["error"] and "out-of-memory" in rec["error"]


# --------------------------------------------------------------------------- corrupt records
@pytest.mark.parametrize("damage, message", [
    (lambda r: {k: v for k, v in r.items() if k != "config_hash"}, "lacks"),
    (lambda r: {**r, "schema_version": SCHEMA_VERSION + 1}, "has schema"),
    (lambda r: {**r, "status": "okay"}, "unknown status"),
    (lambda r: None, "not a JSON object"),
])
def test_a_record_that_fails_its_schema_is_reported_and_recomputed(tmp_path, data_dir, damage, message):
    run(cfg(tmp_path, data_dir, "mean"), **QUIET)
    path = tmp_path / "run" / "records" / "darcy__mean__seed0.json"
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    with pytest.raises(ValueError, match=message):
        read_record(path)
    with pytest.warns(UserWarning, match=message):
        assert run(cfg(tmp_path, data_dir, "mean"), **QUIET) == {"ok": 1}
    assert read_record(path)["status"] == "ok"


# --------------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(cli_args(out, data_dir)) == 0
    return out


@pytest.mark.parametrize("args, message", [
    (["--timeout", "0"], "--timeout must be a positive"),
    (["--timeout", "-3"], "--timeout must be a positive"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--max-train-s", "-1"], "--max-train-s must be a positive"),
    (["--epochs", "2"], "different configuration"),  # the run was made with the size's budget
    (["--seeds", "0,-1"], "--seeds must be non-negative"),
    (["--threads", "0"], "must be at least 1"),
    (["--device", "gpu0"], "unknown --device 'gpu0'"),
    (["--address", "auto"], "--address is for --executor ray"),
    (["--executor", "ray", "--jobs", "2"], "--jobs is for the local executor"),
    (["--executor", "ray", "--device", "cuda:1"], "Ray assigns each cell its GPU"),
    (["--tasks", "darcy:n_train=0"], "n_train and n_test must be at least 1"),
    (["--tasks", "darcy:n_test=-2"], "n_train and n_test must be at least 1"),
    (["--tasks", "darcy:resolution=24"], "multiple of 16"),
    (["--tasks", "darcy:viscosity=2"], "has no field 'viscosity'"),
    (["--methods", "mean:window=3"], "has no parameter 'window'; valid: none"),
])
def test_bad_input_exits_2_and_leaves_an_existing_run_untouched(finished_run, data_dir, capsys, args, message):
    before = snapshot(finished_run)
    assert main([*cli_args(finished_run, data_dir), *args]) == 2
    assert message in capsys.readouterr().err
    assert snapshot(finished_run) == before


@pytest.mark.parametrize("args", [["--executor", "spark"], ["--jobs", "two"], ["--timeout", "soon"],
                                  ["--seeds", "1.5"], ["--size", "10"]])
def test_malformed_options_are_argparse_errors_with_exit_2(finished_run, data_dir, capsys, args):
    before = snapshot(finished_run)
    with pytest.raises(SystemExit) as e:
        main([*cli_args(finished_run, data_dir), *args])
    assert e.value.code == 2 and args[0] in capsys.readouterr().err
    assert snapshot(finished_run) == before


def test_cuda_on_a_machine_without_it_is_exit_2(finished_run, data_dir, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main([*cli_args(finished_run, data_dir), "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err


def test_ray_executor_without_ray_installed_is_exit_2(tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if not installed
    out = tmp_path / "never"
    assert main([*cli_args(out, data_dir), "--executor", "ray"]) == 2
    assert "pip install" in capsys.readouterr().err and not out.exists()


# --------------------------------------------------------------------------- unwritable paths
@pytest.mark.parametrize("make_out", [lambda f: f, lambda f: f / "run"], ids=["out-is-a-file", "out-under-a-file"])
def test_a_run_directory_that_cannot_be_created_is_exit_2(tmp_path, data_dir, capsys, make_out):
    blocker = tmp_path / "blocker"
    blocker.write_text("keep me")
    assert main(cli_args(make_out(blocker), data_dir)) == 2
    assert "cannot write to the run directory" in capsys.readouterr().err
    assert blocker.read_text() == "keep me"


def test_a_read_only_run_directory_is_exit_2_and_nothing_is_lost(finished_run, data_dir, tmp_path):
    """Without write permission (root is made to obey it by dropping CAP_DAC_OVERRIDE)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        caps = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]
    ro = tmp_path / "ro"
    shutil.copytree(finished_run, ro)
    before = snapshot(ro)
    for d in (ro / "records", ro):
        d.chmod(0o555)
    try:
        proc = subprocess.run([*prefix, sys.executable, "-m", "bench", *cli_args(ro, data_dir, "mean,coarse_fv")],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        for d in (ro, ro / "records"):
            d.chmod(0o755)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot write to the run directory" in proc.stderr and "Permission denied" in proc.stderr
    assert snapshot(ro) == before
