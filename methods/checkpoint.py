"""The checkpoint format of fitted neural methods (`NeuralMethod.save` / ``restore``).

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

from methods.training import load_tensors, save_atomic
from nskernel import TaskSpec

FORMAT = 1


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


def read_checkpoint(directory: Path, expect: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tensors, meta)`` of the checkpoint in ``directory``, after checking that every
    key of ``expect`` has the same (JSON) value in its metadata."""
    meta = read_meta(directory)
    for key, value in plain(expect).items():
        if meta.get(key) != value:
            raise ValueError(f"checkpoint {directory} was made for another {key}: {meta.get(key)} (here: {value})")
    state = load_tensors(Path(directory) / "model.pt")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {directory}/model.pt is not a format-{FORMAT} checkpoint")
    return state, meta


__all__ = ["FORMAT", "plain", "read_checkpoint", "read_meta", "spec_identity", "write_checkpoint"]
