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
