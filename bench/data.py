"""Dataset cache: HDF5 files keyed by a hash of the generator config, with a checksum.

A file is written to a temporary name and renamed, so a crash never leaves a half
file under the real name. On load the SHA-256 of every array is recomputed and compared
with the stored one: a corrupted or truncated file is reported and regenerated, never
silently used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from nskernel import Dataset

FORMAT_VERSION = 1
ENV_DATA_DIR = "NEUROSCALE_DATA"


def default_data_dir() -> Path:
    """``$NEUROSCALE_DATA`` or ``~/.cache/neuroscale-bench``."""
    env = os.environ.get(ENV_DATA_DIR)
    return Path(env) if env else Path.home() / ".cache" / "neuroscale-bench"


def task_config(task: Any) -> dict[str, Any]:
    """The task's generator configuration: its class name and every dataclass field."""
    return {"task": task.name, "format": FORMAT_VERSION, **dataclasses.asdict(task)}


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _arrays(ds: Dataset) -> dict[str, np.ndarray]:
    out = {"inputs": ds.inputs}
    if ds.fine is not None:
        out["fine"] = ds.fine
    out.update({f"targets/k{k}": v for k, v in sorted(ds.targets.items())})
    out.update({f"rollouts/k{k}": v for k, v in sorted(ds.rollouts.items())})
    out.update({f"static/{name}": v for name, v in sorted(ds.static.items())})  # graph tasks only
    return out


def checksum(ds: Dataset) -> str:
    h = hashlib.sha256()
    for name, arr in _arrays(ds).items():
        h.update(name.encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def save(ds: Dataset, path: Path, config: dict[str, Any]) -> str:
    """Write atomically; returns the checksum stored in the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # host + pid: two machines regenerating into a shared cache never share a temp name
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    digest = checksum(ds)
    with h5py.File(tmp, "w") as f:
        for name, arr in _arrays(ds).items():
            f.create_dataset(name, data=arr)
        f.attrs["config"] = json.dumps(config, sort_keys=True, default=str)
        f.attrs["meta"] = json.dumps(ds.meta, sort_keys=True, default=str)
        f.attrs["checksum"] = digest
    os.replace(tmp, path)
    return digest


def load(path: Path) -> tuple[Dataset, str]:
    """Read and verify; raises ``ValueError`` on a checksum mismatch or a bad file."""
    with h5py.File(path, "r") as f:
        targets = {int(n[1:]): f["targets"][n][()] for n in f["targets"]}
        rollouts = {int(n[1:]): f["rollouts"][n][()] for n in f["rollouts"]} if "rollouts" in f else {}
        ds = Dataset(
            inputs=f["inputs"][()],
            targets=targets,
            fine=f["fine"][()] if "fine" in f else None,
            rollouts=rollouts,
            meta=json.loads(f.attrs.get("meta", "{}")),
            static={name: f["static"][name][()] for name in _static_names(f)},
        )
        stored = str(f.attrs["checksum"])
    digest = checksum(ds)
    if digest != stored:
        raise ValueError(f"checksum mismatch in {path} (stored {stored[:12]}, computed {digest[:12]})")
    return ds, digest


def load_or_generate(task: Any, data_dir: Path, progress: bool = False) -> tuple[Dataset, str, Path]:
    """The task's dataset (``n_train + n_test + n_val`` samples, seed 0), from cache or freshly
    generated. Returns ``(dataset, checksum, path)``."""
    config = task_config(task)
    path = Path(data_dir) / f"{task.name}-{config_hash(config)}.h5"
    if path.exists():
        try:
            ds, digest = load(path)
            return ds, digest, path
        except Exception as e:  # corrupted, truncated or unreadable: say so, regenerate
            warnings.warn(f"dataset cache {path} is unusable ({e}); regenerating", stacklevel=2)
    ds = task.generate(task.n_train + task.n_test + task.n_val, seed=0, progress=progress)
    digest = save(ds, path, config)
    return ds, digest, path


# --------------------------------------------------------------------------- splits, lazy access, export
#: the harness's splits, in the order a user names them (the file holds train, test, validation)
SPLITS: tuple[str, ...] = ("train", "validation", "test")
#: the page that documents every key and attribute; `export_dataset` copies it beside the files
FORMAT_DOC = Path(__file__).resolve().parents[1] / "docs" / "data-format.md"


def cache_path(task: Any, data_dir: Path) -> Path:
    """Where `load_or_generate` keeps ``task``'s dataset: ``<data_dir>/<task>-<config hash>.h5``."""
    return Path(data_dir) / f"{task.name}-{config_hash(task_config(task))}.h5"


def split_ranges(task: Any) -> dict[str, range]:
    """Sample indices of each split, exactly as the harness splits (`bench.cell.train_test`):
    train the first ``n_train`` samples, test the ``n_test`` after them, validation the last
    ``n_val``."""
    a, b = task.n_train, task.n_train + task.n_test
    return {"train": range(0, a), "validation": range(b, b + task.n_val), "test": range(a, b)}


def _array_names(f: h5py.File) -> list[str]:
    """The file's arrays in the order `checksum` hashes them (factors sorted as integers)."""
    names = ["inputs"] + (["fine"] if "fine" in f else [])
    for group in ("targets", "rollouts"):
        if group in f:
            names += [f"{group}/k{k}" for k in sorted(int(n[1:]) for n in f[group])]
    return names + [f"static/{name}" for name in _static_names(f)]


def _static_names(f: h5py.File) -> list[str]:
    """The task's static arrays (``static/...``, graph tasks), sorted as `_arrays` stores them."""
    if "static" not in f:
        return []
    names: list[str] = []
    f["static"].visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


def file_checksum(path: Path, chunk_bytes: int = 64 << 20) -> tuple[str, str]:
    """``(stored, computed)`` SHA-256 of a cache or export file, read a chunk of samples at a
    time (the same digest as `checksum` of the loaded dataset, without holding it in memory)."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for name in _array_names(f):
            d = f[name]
            h.update(name.encode())
            step = max(1, chunk_bytes // max(1, d.dtype.itemsize * int(np.prod(d.shape[1:], dtype=np.int64))))
            for s in range(0, d.shape[0], step):
                h.update(np.ascontiguousarray(d[s : s + step]).tobytes())
        stored = str(f.attrs["checksum"])
    return stored, h.hexdigest()


def ensure_cached(task: Any, data_dir: Path, verify: bool = True, progress: bool = False) -> Path:
    """The path of ``task``'s cache file, generated (`load_or_generate`) if missing; with
    ``verify`` its checksum is checked by streaming, and a file that fails is regenerated."""
    path = cache_path(task, data_dir)
    if path.exists():
        if not verify:
            return path
        try:
            stored, computed = file_checksum(path)
            if stored == computed:
                return path
        except Exception:  # noqa: BLE001 -- unreadable: load_or_generate says so and regenerates
            pass
    return load_or_generate(task, data_dir, progress=progress)[2]


def export_name(task_label: str, size: str) -> str:
    """File name of an export: ``darcy-smoke.h5``; a variant's ``:`` becomes ``_``
    (``turbulence_re=1e4-small.h5``)."""
    safe = "".join(c if c.isalnum() or c in "=.,_-" else "_" for c in task_label)
    return f"{safe}-{size}.h5"


def export_dataset(task: Any, data_dir: Path, out_dir: Path, task_label: str | None = None, size: str = "",
                   progress: bool = False) -> Path:
    """Write ``task``'s dataset as one self-contained HDF5 file in ``out_dir`` and return its
    path: the verified cache file (same arrays, ``config``/``meta``/``checksum``) plus the
    split indices (``splits/<split>``) and descriptive attributes, all plain HDF5
    (docs/data-format.md). Written to a temporary name and renamed."""
    src = ensure_cached(task, data_dir, verify=True, progress=progress)
    label = task_label or task.name
    out = Path(out_dir) / export_name(label, size or "custom")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    spec = task.spec()
    try:
        with h5py.File(tmp, "a") as f:
            for split, r in split_ranges(task).items():
                f.create_dataset(f"splits/{split}", data=np.arange(r.start, r.stop, dtype=np.int64))
            ks = sorted(int(n[1:]) for n in f["targets"])
            f.attrs["task"] = label
            f.attrs["size"] = size
            f.attrs["n_train"], f.attrs["n_test"], f.attrs["n_val"] = task.n_train, task.n_test, task.n_val
            f.attrs["in_channels"] = ",".join(spec.in_names)
            f.attrs["out_channels"] = ",".join(spec.out_names)
            f.attrs["k_values"] = np.asarray(ks, dtype=np.int64)
            f.attrs["rollout_horizons"] = np.asarray(spec.rollout_horizons if "rollouts" in f else (), dtype=np.int64)
            f.attrs["time_dependent"] = int(spec.time_dependent)
            f.attrs["domain"] = np.asarray(spec.domain, dtype=np.float64)
            f.attrs["boundary"] = spec.boundary
            f.attrs["source_cache"] = src.name
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def copy_format_doc(out_dir: Path) -> Path | None:
    """Copy docs/data-format.md into ``out_dir`` (None where the docs are not installed)."""
    if not FORMAT_DOC.exists():
        return None
    dest = Path(out_dir) / "data-format.md"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FORMAT_DOC, dest)
    return dest
