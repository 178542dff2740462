"""Optional experiment tracking (`bench run --log tensorboard|wandb`), checked through
TensorBoard's own event files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.records import read_record
from bench.runner import RunConfig, run
from bench.tracking import curve, scores

TINY_FNO = "fno:width=8,n_layers=2,n_modes=6"
ROOT = Path(__file__).resolve().parents[1]


def cfg(tmp_path, data_dir, methods, **kw) -> RunConfig:
    kw.setdefault("out", tmp_path / "run")
    return RunConfig(tasks="darcy", methods=methods, size="smoke", data_dir=data_dir, progress=False, **kw)


def events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc


def test_tensorboard_event_files_hold_the_curve_and_the_scores(tmp_path, data_dir):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e '.[tracking]')")
    # two worker processes: the driver logs each record as it arrives from the pool
    c = cfg(tmp_path, data_dir, f"{TINY_FNO},mean", epochs=3, log="tensorboard", jobs=2, threads=1)
    assert run(c, log=lambda s: None) == {"ok": 2}
    out = tmp_path / "run"
    assert sorted(p.name for p in (out / "tensorboard").iterdir()) == [
        "darcy__fno_width=8_n_layers=2_n_modes=6__seed0", "darcy__mean__seed0"]
    rec = read_record(out / "records" / "darcy__fno_width=8_n_layers=2_n_modes=6__seed0.json")
    acc = events(out / "tensorboard" / "darcy__fno_width=8_n_layers=2_n_modes=6__seed0")
    log = rec["train_log"]
    for tag, values in (("train/loss", log["loss"]), ("val/error", log["val"]), ("train_terms/data",
                                                                                 log["terms"]["data"])):
        points = acc.Scalars(tag)
        assert [p.step for p in points] == [1, 2, 3] == list(range(1, log["epochs"] + 1))
        np.testing.assert_allclose([p.value for p in points], values, rtol=1e-6)  # float32 in the event file
    rel = {m["k"]: m["value"] for m in rec["measurements"] if m["metric"] == "rel_l2"}
    for k in (4, 8, 16):
        (point,) = acc.Scalars(f"score/rel_l2/k{k}")
        assert point.value == pytest.approx(rel[k], rel=1e-6)
    (train_s,) = acc.Scalars("score/train_s")
    assert train_s.value > 0
    # a method without training logs its scores, and no curve
    acc = events(out / "tensorboard" / "darcy__mean__seed0")
    tags = acc.Tags()["scalars"]
    assert "score/rel_l2/k8" in tags and not [t for t in tags if t.startswith(("train", "val"))]


def test_a_recomputed_cell_replaces_its_event_file_and_resumed_cells_log_nothing(tmp_path, data_dir):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e '.[tracking]')")
    folder = tmp_path / "run" / "tensorboard" / "darcy__mean__seed0"
    run(cfg(tmp_path, data_dir, "mean", log="tensorboard"), log=lambda s: None)
    first = sorted(folder.iterdir())
    run(cfg(tmp_path, data_dir, "mean", log="tensorboard"), log=lambda s: None)  # resumed: nothing runs
    assert sorted(folder.iterdir()) == first
    run(cfg(tmp_path, data_dir, "mean", log="tensorboard", overwrite=True), log=lambda s: None)
    (only,) = folder.iterdir()
    assert len(events(folder).Scalars("score/rel_l2/k4")) == 1


def test_a_tracking_error_is_reported_and_the_run_goes_on(tmp_path, data_dir, monkeypatch):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e '.[tracking]')")
    import bench.tracking

    def broken(self, rec):
        raise OSError("disk full")

    monkeypatch.setattr(bench.tracking.TensorBoardTracker, "__call__", broken)
    lines: list[str] = []
    assert run(cfg(tmp_path, data_dir, "mean,coarse_fv", log="tensorboard"), log=lines.append) == {"ok": 2}
    assert sum("--log tensorboard: could not log darcy__" in ln and "disk full" in ln for ln in lines) == 2


@pytest.mark.parametrize("kind, module", [("tensorboard", "torch.utils.tensorboard"), ("wandb", "wandb")])
def test_a_missing_library_is_a_clear_error_and_nothing_is_written(tmp_path, data_dir, capsys, monkeypatch, kind,
                                                                    module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now fails as if it were not installed
    out = tmp_path / "never"
    rc = main(["run", "--tasks", "darcy", "--methods", "mean", "--size", "smoke", "--out", str(out),
               "--data-dir", str(data_dir), "--quiet", "--no-report", "--log", kind])
    assert rc == 2
    assert f'--log {kind} needs' in (err := capsys.readouterr().err) and 'pip install -e ".[tracking]"' in err
    assert not out.exists()


def test_log_none_imports_and_writes_nothing(tmp_path, data_dir):
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from bench.runner import RunConfig, run
        out = Path({str(tmp_path / 'run')!r})
        run(RunConfig(tasks="darcy", methods="mean", size="smoke", data_dir=Path({str(data_dir)!r}), out=out,
                      progress=False), log=lambda s: None)
        loaded = [m for m in ("wandb", "tensorboard", "torch.utils.tensorboard") if m in sys.modules]
        assert not loaded, loaded
        names = sorted(p.name for p in out.iterdir())
        assert "records" in names and "tensorboard" not in names and "wandb" not in names, names
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_wandb_offline_logs_inside_the_run_directory(tmp_path, data_dir, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed: the optional extra 'tracking' "
                                        "(pip install -e '.[tracking]'); its missing-library error is tested above")
    monkeypatch.setenv("WANDB_SILENT", "true")
    c = cfg(tmp_path, data_dir, f"{TINY_FNO},mean", epochs=2, log="wandb")
    assert run(c, log=lambda s: None) == {"ok": 2}
    runs = sorted((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    # the run files (protobuf records, uncompressed) hold the cell's name and its tags
    data = {b"fno" in d: d for d in ((next(r.glob("*.wandb"))).read_bytes() for r in runs)}
    assert b"darcy__fno_width=8" in data[True] and b"train/loss" in data[True] and b"val/error" in data[True]
    assert b"darcy__mean__seed0" in data[False] and b"train/loss" not in data[False]
    assert all(b"score/rel_l2/k4" in d for d in data.values())


def test_curve_and_scores_of_a_record():
    rec = {"task": "turbulence", "method": "fno_ensemble", "seed": 0, "status": "ok",
           "train_log": {"epochs": 2, "loss": [0.5, 0.25], "val": [0.6, 0.4], "terms": {"data": [0.5, 0.25]}},
           "measurements": [
               {"metric": "rel_l2", "k": 4, "value": 0.1, "status": "ok"},
               {"metric": "nll", "k": 4, "value": float("nan"), "status": "n/a"},
               {"metric": "rollout_rel_l2@3", "k": 8, "value": 0.3, "status": "ok"},
               {"metric": "train_s", "k": None, "value": 1.5, "status": "ok"}]}
    assert curve(rec) == [(1, {"train/loss": 0.5, "val/error": 0.6, "train_terms/data": 0.5}),
                          (2, {"train/loss": 0.25, "val/error": 0.4, "train_terms/data": 0.25})]
    assert scores(rec) == {"score/rel_l2/k4": 0.1, "score/rollout_rel_l2_3/k8": 0.3, "score/train_s": 1.5}
    truncated = json.loads(json.dumps({**rec, "status": "truncated"}))
    assert scores(truncated) == {} and len(curve(truncated)) == 2  # never shown as a result; the curve stays
    assert curve({"status": "failed"}) == []
