"""Checkpoint files: the atomic tensor I/O every checkpoint uses (training states of
`methods.training`, fitted models), and the format of fitted neural methods
(`NeuralMethod.save` / ``restore``).

A checkpoint is a folder with two files:

* ``model.pt``: tensors only (every network's weights, the normalisation, and the extra
  fitted tensors a method declares), read with ``torch.load(weights_only=True)``, which
  refuses pickled code: a checkpoint from someone else's run directory is safe to open;
* ``model.json``: plain metadata (method name and hyperparameters, training factors,
  batch size, the task-spec identity, library versions, the extra plain values).

`read_checkpoint` checks the metadata against what the caller expects (method,
hyperparameters, task) and refuses a mismatch with a message that says which.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nskernel import TaskSpec

FORMAT = 1


def tensor_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict without the non-tensor entries some libraries add
    (neuraloperator's ``_metadata`` holds functions and classes): what a checkpoint keeps,
    and all that ``load_state_dict`` needs."""
    return {k: v for k, v in model.state_dict().items() if torch.is_tensor(v)}


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary name, then rename: a kill leaves the old file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_tensors(path: Path) -> Any:
    """Read a checkpoint of tensors and plain values only. ``weights_only=True`` refuses
    any pickled code, so a checkpoint from someone else's run directory is safe to open."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- corrupt, truncated, or not tensors-only: say which file
        raise ValueError(f"cannot load checkpoint {path}: {type(e).__name__}: {e}") from None


def spec_identity(spec: TaskSpec) -> dict[str, Any]:
    """What a checkpoint must agree with: the shapes and the kind of the task."""
    return {"name": spec.name, "fine_shape": list(spec.fine_shape), "in_channels": spec.in_channels,
            "out_channels": spec.out_channels, "boundary": spec.boundary}


def plain(value: Any) -> Any:
    """JSON's view of a value (tuples become lists), so metadata compares after a round trip."""
    return json.loads(json.dumps(value))


def write_checkpoint(directory: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """``model.pt`` (``tensors``: nested dicts and lists of tensors) and ``model.json``
    (``meta`` plus the format and library versions), each written atomically."""
    directory = Path(directory)
    save_atomic({"format": FORMAT, **tensors}, directory / "model.pt")
    meta = {"format": FORMAT, **plain(meta), "versions": {"torch": torch.__version__, "numpy": np.__version__}}
    tmp = directory / f".model.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, directory / "model.json")


def read_meta(directory: Path) -> dict[str, Any]:
    path = Path(directory) / "model.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"no readable checkpoint metadata at {path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a format-{FORMAT} checkpoint")
    return meta


def read_checkpoint(directory: Path, expect: dict[str, Any],
                    defaults: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tensors, meta)`` of the checkpoint in ``directory``, after checking that every
    key of ``expect`` has the same (JSON) value in its metadata. With the method's
    hyperparameter ``defaults``, a parameter the saved ``params`` lack (declared after the
    checkpoint was written, e.g. ``augment``) is not compared while it is at its default."""
    meta = read_meta(directory)
    saved = meta.get("params")
    if defaults is not None and "params" in expect and isinstance(saved, dict):
        expect = {**expect, "params": {k: v for k, v in expect["params"].items()
                                       if k in saved or k not in defaults or v != defaults[k]}}
    for key, value in plain(expect).items():
        if meta.get(key) != value:
            what = {"params": "hyperparameters", "spec": "task"}.get(key, key)
            raise ValueError(f"checkpoint {directory} was made with another {what}: {meta.get(key)} (here: {value})")
    state = load_tensors(Path(directory) / "model.pt")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {directory}/model.pt is not a format-{FORMAT} checkpoint")
    return state, meta


__all__ = ["FORMAT", "load_tensors", "plain", "read_checkpoint", "read_meta", "save_atomic", "spec_identity",
           "tensor_state", "write_checkpoint"]
