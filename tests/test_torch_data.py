"""The data as torch datasets (`bench.torch_data`), the export (`bench data --export`), the
format page (docs/data-format.md) and the README's "Train your own model on our data"
example, which runs here exactly as written."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bench.cell import train_test
from bench.cli import main
from bench.data import (
    cache_path,
    checksum,
    export_dataset,
    file_checksum,
    load,
    load_or_generate,
    split_ranges,
)
from bench.names import build_task
from bench.torch_data import TaskDataset, task_datasets
from nskernel import K_VALUES, Factors
from nskernel.errors import UsageError
from nskernel.grid import restrict
from tasks.convection import Convection

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "data-format.md"
TASKS = ("darcy", "turbulence", "convection")


def _all(ds: TaskDataset) -> tuple[torch.Tensor, object]:
    """Every item of ``ds`` as one batch."""
    return next(iter(DataLoader(ds, batch_size=len(ds))))


def _harness(task_name: str, data_dir: Path):
    _, task = build_task(task_name, "smoke")
    data, _, _ = load_or_generate(task, data_dir)
    return task, data


# --------------------------------------------------------------------------- README example
def readme_example() -> str:
    """The first python code block under the README heading "Train your own model on our data"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Train your own model on our data\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README section has no python code block"
    return match.group(1)


def test_readme_example_runs_as_written(data_dir, monkeypatch, capsys):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 30, "keep the README example short"
    monkeypatch.setenv("NEUROSCALE_DATA", str(data_dir))
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})  # noqa: S102 -- our own README
    out = capsys.readouterr().out
    value = float(re.search(r"test rel_l2 at k=4: ([0-9.]+)", out).group(1))
    assert math.isfinite(value) and value < 0.3  # the training-mean predictor scores ~0.23 here
    _, task = build_task("darcy", "smoke")
    assert cache_path(task, data_dir).exists()  # it used the data directory of $NEUROSCALE_DATA


# --------------------------------------------------------------------------- splits
@pytest.mark.parametrize("task_name", TASKS)
def test_splits_match_the_harness_exactly(data_dir, task_name):
    task, data = _harness(task_name, data_dir)
    train, test = train_test(task, data, Factors(train=(4, 8), test=(1, 4, 8, 16)))
    val = train.validation
    sets = task_datasets(task_name, "smoke", k=(4, 8), data_dir=data_dir)
    assert [len(sets[s]) for s in ("train", "validation", "test")] == [task.n_train, task.n_val, task.n_test]
    for split, ref in (("train", train), ("validation", val)):
        x, ys = _all(sets[split])
        assert x.dtype == torch.float32 and set(ys) == {4, 8}
        np.testing.assert_array_equal(x.numpy(), ref.inputs)
        for k in (4, 8):
            np.testing.assert_array_equal(ys[k].numpy(), ref.targets[k])
    ds = TaskDataset(task_name, "test", "smoke", k=(1, 4, 8, 16), data_dir=data_dir)
    x, ys = _all(ds)
    np.testing.assert_array_equal(x.numpy(), test.inputs)
    for k in (1, 4, 8, 16):
        np.testing.assert_array_equal(ys[k].numpy(), test.targets[k])
    assert list(ds.indices) == list(range(task.n_train, task.n_train + task.n_test))


def test_single_factor_gives_a_tensor_and_options(data_dir):
    ds = TaskDataset("darcy", "validation", "smoke", k=8, data_dir=data_dir, dtype="float64", input_k=4)
    x, y = ds[0]
    assert isinstance(y, torch.Tensor) and y.shape == (1, 4, 4) and y.dtype == torch.float64
    assert x.shape == (1, 8, 8)  # the input block-averaged by input_k
    _, data = _harness("darcy", data_dir)
    j = ds.indices[-1]
    np.testing.assert_allclose(ds[-1][0].numpy(), restrict(data.inputs[j].astype(np.float64), 4))
    np.testing.assert_array_equal(ds[-1][1].numpy(), data.targets[8][j])
    with pytest.raises(IndexError):
        ds[len(ds)]


# --------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("task_name", ["darcy", "convection"])
def test_normalisation_uses_training_statistics_and_inverts(data_dir, task_name):
    task, data = _harness(task_name, data_dir)
    a = task.n_train
    x_tr, y_tr = data.inputs[:a].astype(np.float64), data.targets[4][:a].astype(np.float64)
    raw = TaskDataset(task_name, "test", "smoke", k=(4, 8), data_dir=data_dir, dtype=torch.float64)
    norm = {s: TaskDataset(task_name, s, "smoke", k=(4, 8), normalise=True, data_dir=data_dir, dtype=torch.float64)
            for s in ("train", "test")}
    c = data.inputs.shape[1]
    for ds in norm.values():  # the test split is normalised with the training split's statistics
        (xm, xs), (ym, ys) = ds.stats["inputs"], ds.stats["targets"]
        assert xm.shape == (c,) and ym.shape == (c,)
        np.testing.assert_allclose(xm, x_tr.mean(axis=(0, 2, 3)), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(xs, x_tr.std(axis=(0, 2, 3)), rtol=1e-10)
        np.testing.assert_allclose(ym, y_tr.mean(axis=(0, 2, 3)), rtol=1e-12, atol=1e-15)  # the finest target
        np.testing.assert_allclose(ys, y_tr.std(axis=(0, 2, 3)), rtol=1e-10)
    x, y = _all(norm["train"])
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)).numpy(), 0.0, atol=1e-10)
    np.testing.assert_allclose(x.std(dim=(0, 2, 3), correction=0).numpy(), 1.0, rtol=1e-10)
    np.testing.assert_allclose(y[4].std(dim=(0, 2, 3), correction=0).numpy(), 1.0, rtol=1e-10)
    # one (mean, std) for every factor: normalising commutes with the block average
    np.testing.assert_allclose(restrict(y[4], 2).numpy(), y[8].numpy(), atol=1e-5)
    xt, yt = _all(norm["test"])
    xr, yr = _all(raw)
    (xm, xs), (ym, ys) = norm["test"].stats["inputs"], norm["test"].stats["targets"]
    np.testing.assert_allclose(xt.numpy(), (xr.numpy() - xm[:, None, None]) / np.where(xs > 0, xs, 1)[:, None, None])
    np.testing.assert_allclose(norm["test"].denormalise_inputs(xt).numpy(), xr.numpy(), rtol=1e-12, atol=1e-12)
    back = norm["test"].denormalise_targets(yt)
    for k in (4, 8):
        np.testing.assert_allclose(back[k].numpy(), yr[k].numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(norm["test"].normalise_targets(yr[k]).numpy(), yt[k].numpy(), rtol=1e-12,
                                   atol=1e-12)
    np.testing.assert_allclose(norm["test"].normalise_inputs(xr).numpy(), xt.numpy(), rtol=1e-12, atol=1e-12)
    assert raw.stats is None and raw.denormalise_targets(yr[4]) is yr[4]  # identity without normalise


# --------------------------------------------------------------------------- lazy reads, workers
def test_dataloader_with_two_workers_reads_the_same_samples(data_dir):
    ds = TaskDataset("darcy", "train", "smoke", k=(4, 8), normalise=True, data_dir=data_dir)
    x0, _ = ds[0]  # the parent has the file open: each worker must open its own
    sequential = [ds[i] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    xs, y4 = zip(*[(x, y[4]) for x, y in loader])
    torch.testing.assert_close(torch.cat(xs), torch.stack([s[0] for s in sequential]), rtol=0, atol=0)
    torch.testing.assert_close(torch.cat(y4), torch.stack([s[1][4] for s in sequential]), rtol=0, atol=0)
    clone = pickle.loads(pickle.dumps(ds))  # spawn-started workers get a pickled copy: no open handle in it
    assert clone._file is None
    torch.testing.assert_close(clone[0][0], x0, rtol=0, atol=0)
    ds.close()
    torch.testing.assert_close(ds[0][0], x0, rtol=0, atol=0)  # reopened on demand


def test_corrupted_cache_is_regenerated(data_dir, tmp_path):
    _, task = build_task("darcy", "smoke")
    src = cache_path(task, data_dir)
    ref = TaskDataset("darcy", "train", "smoke", data_dir=data_dir)[3]
    own = tmp_path / "cache"
    own.mkdir()
    dst = own / src.name
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "a") as f:
        f["inputs"][3] = 0.0
    with pytest.warns(UserWarning, match="regenerating"):
        ds = TaskDataset("darcy", "train", "smoke", data_dir=own)
    torch.testing.assert_close(ds[3][0], ref[0], rtol=0, atol=0)


def test_file_checksum_streams_the_same_digest(data_dir):
    for name in ("darcy", "turbulence"):
        _, task = build_task(name, "smoke")
        ds, digest, path = load_or_generate(task, data_dir)
        assert path == cache_path(task, data_dir)
        assert file_checksum(path, chunk_bytes=5000) == (digest, checksum(ds))


# --------------------------------------------------------------------------- bad names
@pytest.mark.parametrize("kwargs, pattern", [
    ({"task": "darcey"}, r"unknown task 'darcey'; valid: .*darcy"),
    ({"split": "val"}, r"unknown split 'val'; valid: train, validation, test"),
    ({"size": "tiny"}, r"unknown size 'tiny'; valid: smoke, small, paper"),
    ({"k": 3}, r"k=3 is not stored for task darcy; valid: 1, 4, 8, 16"),
    ({"k": (4, 32)}, r"k=32 .*valid: 1, 4, 8, 16"),
    ({"k": ()}, r"valid: 1, 4, 8, 16"),
    ({"input_k": 2}, r"input_k=2 .*valid: 1, 4, 8, 16"),
    ({"k": "four"}, r"k must be an int or a tuple of ints, got 'four'; valid: 1, 4, 8, 16"),
    ({"dtype": "int32"}, r"floating torch dtype"),
    ({"dtype": "float65"}, r"floating torch dtype"),
])
def test_bad_names_raise_errors_listing_valid_choices(data_dir, kwargs, pattern):
    with pytest.raises(UsageError, match=pattern):
        TaskDataset(**{"task": "darcy", "data_dir": data_dir, **kwargs})


def test_cli_export_bad_input_names_valid_choices(data_dir, tmp_path, capsys):
    assert main(["data", "--tasks", "darcey", "--size", "smoke", "--export", str(tmp_path / "x"),
                 "--data-dir", str(data_dir)]) == 2
    assert re.search(r"unknown task 'darcey'; valid: .*darcy", capsys.readouterr().err)
    assert not (tmp_path / "x").exists()  # nothing written
    (tmp_path / "file").write_text("")
    assert main(["data", "--tasks", "darcy", "--size", "smoke", "--export", str(tmp_path / "file"),
                 "--data-dir", str(data_dir)]) == 2


# --------------------------------------------------------------------------- export and the format page
def doc_table(heading: str) -> list[list[str]]:
    """Rows (cells without backticks) of the first table under ``heading`` in docs/data-format.md."""
    text = DOC.read_text().split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip().strip("`") for c in row.strip("|").split("|")] for row in rows[2:]]


ARRAY_CONDITIONS = ("always", "if stored", "time-dependent", "export")
ATTR_TYPES = ("str", "str (JSON)", "int64", "int64 array", "float64 array")


def documented_arrays() -> dict[str, tuple[str, str, str]]:
    """key (``{k}`` expanded) -> (shape expression, dtype, condition)."""
    out = {}
    for key, shape, dtype, cond, _ in doc_table("## Arrays (HDF5 datasets)"):
        assert cond in ARRAY_CONDITIONS, f"unknown condition {cond!r} for {key}"
        for k in K_VALUES if "{k}" in key else (None,):
            out[key.replace("{k}", str(k))] = (re.sub(r"\bk\b", str(k), shape) if k else shape, dtype, cond)
    return out


def documented_attributes() -> dict[str, tuple[str, str]]:
    out = {}
    for name, typ, cond, _ in doc_table("## Attributes (of the file's root)"):
        assert typ in ATTR_TYPES and cond in ("always", "export"), (name, typ, cond)
        out[name] = (typ, cond)
    return out


def check_documented(path: Path, task: object, exported: bool) -> None:
    """The file at ``path`` holds exactly the documented keys and attributes, read with h5py alone."""
    spec = task.spec()
    h, w = spec.fine_shape
    symbols = {"N": task.n_train + task.n_test + task.n_val, "C": spec.in_channels, "H": h, "W": w,
               "n_train": task.n_train, "n_test": task.n_test, "n_val": task.n_val,
               "L": max(spec.rollout_horizons, default=0)}  # the rollout length
    assert spec.in_channels == spec.out_channels  # the page's single C
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["config"])
        present = {"always": True, "if stored": config.get("store_fine", True),
                   "time-dependent": spec.time_dependent, "export": exported}
        in_file: dict[str, h5py.Dataset] = {}
        f.visititems(lambda name, obj: in_file.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
        documented = documented_arrays()
        assert set(in_file) <= set(documented), f"undocumented keys: {set(in_file) - set(documented)}"
        for key, (shape, dtype, cond) in documented.items():
            assert (key in in_file) == present[cond], (key, cond)
            if key in in_file:
                want = tuple(int(eval(e, {}, symbols)) for e in shape.strip("(,)").split(","))  # noqa: S307
                assert in_file[key].shape == want and in_file[key].dtype == np.dtype(dtype), key
        attrs = documented_attributes()
        assert set(f.attrs) <= set(attrs), f"undocumented attributes: {set(f.attrs) - set(attrs)}"
        for name, (typ, cond) in attrs.items():
            assert (name in f.attrs) == (cond == "always" or exported), name
            if name not in f.attrs:
                continue
            v = f.attrs[name]
            if typ.startswith("str"):
                assert isinstance(v, str), name
                if typ == "str (JSON)":
                    json.loads(v)
            elif typ == "int64":
                assert isinstance(v, np.int64), name
            else:
                assert isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype == np.dtype(typ.split()[0]), name


@pytest.fixture(scope="module")
def export_dir(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports") / "export"  # the name docs/data-format.md's example reads
    assert main(["data", "--tasks", ",".join(TASKS), "--size", "smoke", "--export", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return out


@pytest.mark.parametrize("task_name", TASKS)
def test_export_reloads_with_h5py_alone_as_documented(data_dir, export_dir, task_name):
    path = export_dir / f"{task_name}-smoke.h5"
    _, task = build_task(task_name, "smoke")
    check_documented(path, task, exported=True)
    check_documented(cache_path(task, data_dir), task, exported=False)
    assert (export_dir / "data-format.md").read_text() == DOC.read_text()
    spec = task.spec()
    with h5py.File(path, "r") as f:
        for split, r in split_ranges(task).items():
            np.testing.assert_array_equal(f[f"splits/{split}"][()], np.arange(r.start, r.stop))
        assert f.attrs["task"] == task_name and f.attrs["size"] == "smoke"
        assert f.attrs["in_channels"].split(",") == list(spec.in_names)
        assert list(f.attrs["k_values"]) == list(K_VALUES)
        if spec.time_dependent:  # what the page says rollouts are
            for k in K_VALUES:
                ro = f[f"rollouts/k{k}"][()]
                np.testing.assert_array_equal(ro[:, 1], f[f"targets/k{k}"][()])
                np.testing.assert_allclose(ro[:, 0], restrict(f["inputs"][()].astype(np.float64), k),
                                           rtol=1e-5, atol=1e-5)
    stored, computed = file_checksum(path)
    assert stored == computed
    ds, digest = load(path)  # still a valid cache file for the harness
    assert digest == stored and len(ds) == task.n_train + task.n_test + task.n_val


def test_the_format_pages_h5py_example_runs(export_dir, monkeypatch):
    code = re.search(r"## Reading a file with h5py alone\n\n```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    monkeypatch.chdir(export_dir.parent)
    scope: dict[str, object] = {}
    exec(compile(code, "data-format.md", "exec"), scope)  # noqa: S102 -- our own documentation
    assert scope["a"].shape == (16, 1, 32, 32) and scope["u4"].shape == (16, 1, 8, 8)
    assert scope["config"]["task"] == "darcy" and scope["meta"]["seed"] == 0


def test_a_file_without_the_fine_solution(data_dir, tmp_path):
    """As `convection` at `paper` (store_fine=False): no `fine` key, so no k=1, said so."""
    task = dataclasses.replace(Convection.sized("smoke"), store_fine=False)
    with pytest.raises(UsageError, match=r"stores no fine solution\); valid: 4, 8, 16"):
        TaskDataset(task, "test", k=(1, 4), data_dir=data_dir)
    ds = TaskDataset(task, "test", k=4, data_dir=data_dir)
    assert ds[0][1].shape == (3, 8, 32) and len(ds) == task.n_test
    check_documented(ds.path, task, exported=False)
    out = export_dataset(task, data_dir, tmp_path, task_label="convection:store_fine=false", size="smoke")
    assert out.name == "convection_store_fine=false-smoke.h5"
    check_documented(out, task, exported=True)


def test_export_of_one_task_writes_its_file_and_the_page(data_dir, export_dir, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["data", "--tasks", "darcy", "--size", "smoke", "--export", str(tmp_path),
                     "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "[1/1] darcy: 32 samples" in out and "data-format.md" in out
    assert (tmp_path / "darcy-smoke.h5").read_bytes() == (export_dir / "darcy-smoke.h5").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["darcy-smoke.h5", "data-format.md"]
