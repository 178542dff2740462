"""A benchmark task's data as a `torch.utils.data.Dataset`, for training a model in your own loop.

``TaskDataset(task, split, size, k)`` is one split (``train``, ``validation`` or ``test``,
exactly the harness's split: `bench.data.split_ranges`) of a task's cached dataset
(generated with `bench.data.load_or_generate` if it is missing). Item ``i`` is a tuple
``(x, y)``:

* ``x``: the fine input field ``(C_in, H, W)`` (or its block average at ``input_k``);
* ``y``: the target ``(C_out, H/k, W/k)`` when ``k`` is an int, or a dict ``{k: tensor}``
  when ``k`` is a tuple of factors; ``k = 1`` is the fine solution where the file stores it.

Tensors are ``float32`` unless ``dtype`` says otherwise; a `torch.utils.data.DataLoader`
batches them to ``(B, C, H, W)`` (and a dict of those). Reads are lazy: the HDF5 file is
opened on the first item read in each process (so ``num_workers > 0`` works) and one
sample is read per item.

With ``normalise=True`` inputs and targets are standardised per channel with the
statistics of the **training** split (whatever ``split`` is): inputs with their own
(mean, std), every target factor with the (mean, std) of the finest requested target,
as the harness's neural methods do, so that normalising commutes with the block average
``R_k``. `denormalise_targets` / `denormalise_inputs` invert it. The file format is
documented in docs/data-format.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from bench.data import SPLITS, cache_path, default_data_dir, ensure_cached, split_ranges
from nskernel.errors import UsageError
from nskernel.grid import restrict

Target = torch.Tensor | dict[int, torch.Tensor]

# (path, size, mtime) of files whose checksum this process has verified: a train, a
# validation and a test dataset of one task read (and check) the file once.
_VERIFIED: set[tuple[str, int, int]] = set()


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path), st.st_size, st.st_mtime_ns


def _stored_factors(path: Path) -> tuple[list[int], bool]:
    """(target factors stored, whether the fine solution is stored)."""
    with h5py.File(path, "r") as f:
        return sorted(int(n[1:]) for n in f["targets"]), "fine" in f


def _dataset_key(k: int) -> str:
    return "fine" if k == 1 else f"targets/k{k}"


@lru_cache(maxsize=32)
def _channel_stats(stamp: tuple[str, int, int], key: str, start: int, stop: int, k: int,
                   chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) in float64 of ``R_k f[key][start:stop]``, read in chunks of
    samples and merged exactly (Chan et al.'s pairwise update), so that a large split is
    never held in memory. ``std`` is the population std (``np.std``)."""
    n, mean, m2 = 0, None, None
    with h5py.File(stamp[0], "r") as f:
        d = f[key]
        for s in range(start, stop, chunk):
            x = restrict(np.asarray(d[s : min(s + chunk, stop)], dtype=np.float64), k)
            axes = (0, *range(2, x.ndim))  # samples and points: grid cells or graph nodes
            nb = x.size // x.shape[1]
            mb = x.mean(axis=axes)
            m2b = ((x - mb.reshape(1, -1, *[1] * (x.ndim - 2))) ** 2).sum(axis=axes)
            if mean is None:
                n, mean, m2 = nb, mb, m2b
                continue
            delta, total = mb - mean, n + nb
            mean = mean + delta * nb / total
            m2 = m2 + m2b + delta**2 * n * nb / total
            n = total
    if mean is None:
        raise ValueError("the training split is empty: no statistics to normalise with")
    std = np.sqrt(m2 / n)
    mean.setflags(write=False)  # shared by every dataset of the file (cached)
    std.setflags(write=False)
    return mean, std


class TaskDataset(torch.utils.data.Dataset):
    """One split of a benchmark task's data as torch tensors (see the module docstring).

    ``task``: a task name or variant as on the command line (``"darcy"``,
    ``"turbulence:re=1e4"``), or a task object. ``split``: ``"train"``, ``"validation"`` or
    ``"test"``. ``size``: ``"smoke"``, ``"small"`` or ``"paper"`` (ignored for a task
    object). ``k``: target factor (int: ``y`` is a tensor) or factors (tuple: ``y`` is a
    dict); ``1`` is the fine solution. ``input_k``: block-average the inputs by this factor
    (default 1: the fine field). ``data_dir``: the cache (default ``$NEUROSCALE_DATA`` or
    ``~/.cache/neuroscale-bench``). ``verify``: check the file's checksum once per process.
    """

    def __init__(self, task: Any = "darcy", split: str = "train", size: str = "smoke",
                 k: int | Iterable[int] = 4, *, input_k: int = 1, normalise: bool = False,
                 data_dir: str | Path | None = None, dtype: torch.dtype | str = torch.float32,
                 verify: bool = True, progress: bool = False) -> None:
        if isinstance(task, str):
            from bench.names import build_task

            self.task_name, self.task = build_task(task, size)
        else:
            self.task_name, self.task = task.name, task
        if split not in SPLITS:
            raise UsageError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
        self.split, self.size = split, (size if isinstance(task, str) else "")
        self.dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise UsageError(f"dtype must be a floating torch dtype (e.g. torch.float32), got {dtype!r}")

        data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        fresh = not cache_path(self.task, data_dir).exists()  # generated now: checksummed as it is written
        self.path = ensure_cached(self.task, data_dir, verify=False, progress=progress)
        if verify and not fresh and _stamp(self.path) not in _VERIFIED:
            self.path = ensure_cached(self.task, data_dir, verify=True, progress=progress)
        _VERIFIED.add(_stamp(self.path))

        stored, has_fine = _stored_factors(self.path)
        valid = ([1] if has_fine else []) + stored
        self.single = isinstance(k, int | np.integer)
        try:
            self.ks: tuple[int, ...] = (int(k),) if self.single else tuple(int(v) for v in k)  # type: ignore
        except (TypeError, ValueError):
            raise UsageError(f"k must be an int or a tuple of ints, got {k!r}; valid: "
                             f"{', '.join(map(str, valid))}") from None
        if not self.ks:
            raise UsageError(f"no target factor given; valid: {', '.join(map(str, valid))}")
        for v in self.ks:
            if v not in valid:
                why = "" if has_fine or v != 1 else f" (this {self.task_name} dataset stores no fine solution)"
                raise UsageError(f"k={v} is not stored for task {self.task_name}{why}; valid: "
                                 f"{', '.join(map(str, valid))}")
        #: axes of a field's points: 2 on a grid (H, W), 1 on a graph (nodes)
        self.point_dims = len(self.task.spec().fine_shape)
        if input_k != 1 and self.point_dims != 2:
            raise UsageError(f"input_k={input_k}: inputs are block-averaged on grids only; task {self.task_name} "
                             "is on a graph (use input_k=1)")
        if input_k not in [1, *stored]:
            raise UsageError(f"input_k={input_k} is not a factor of task {self.task_name}; valid: "
                             f"{', '.join(map(str, [1, *stored]))}")
        self.input_k = int(input_k)

        ranges = split_ranges(self.task)
        #: the samples of this split, as indices into the file's arrays (and into ``splits/<split>``)
        self.indices: range = ranges[split]
        self.normalise = bool(normalise)
        #: per-channel float64 statistics of the training split, or None without ``normalise``:
        #: ``{"inputs": (mean, std), "targets": (mean, std)}``, each of shape ``(C,)``
        self.stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        if self.normalise:
            train, stamp = ranges["train"], _stamp(self.path)
            kmin = min(self.ks)
            self.stats = {
                "inputs": _channel_stats(stamp, "inputs", train.start, train.stop, self.input_k),
                "targets": _channel_stats(stamp, _dataset_key(kmin), train.start, train.stop, 1),
            }
        self._file: h5py.File | None = None
        self._pid = -1

    # -- torch Dataset protocol ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Target]:
        j = self.indices[i]  # IndexError past the end, negative indices count from the end
        f = self._h5()
        x = np.asarray(f["inputs"][j], dtype=np.float64)
        if self.input_k > 1:
            x = restrict(x, self.input_k)
        x_t = self._apply(x, "inputs", inverse=False)
        ys = {k: self._apply(np.asarray(f[_dataset_key(k)][j], dtype=np.float64), "targets", inverse=False)
              for k in self.ks}
        return x_t, (ys[self.ks[0]] if self.single else ys)

    def _h5(self) -> h5py.File:
        """The file, opened on first use in each process (a DataLoader worker opens its own)."""
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, -1  # an open HDF5 handle never crosses processes
        return state

    def close(self) -> None:
        """Close this process's file handle (reopened on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass

    # -- normalisation ----------------------------------------------------------------------------
    def _apply(self, a: np.ndarray, which: str, inverse: bool) -> torch.Tensor:
        if self.stats is not None:
            mean, std = (v.reshape(-1, *[1] * self.point_dims) for v in self.stats[which])
            a = a * _safe(std) + mean if inverse else (a - mean) / _safe(std)
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.dtype)

    def _map(self, t: Any, which: str, inverse: bool) -> Any:
        if isinstance(t, Mapping):
            return {k: self._map(v, which, inverse) for k, v in t.items()}
        if self.stats is None:
            return t
        mean, std = self.stats[which]
        tt = torch.as_tensor(t)
        shape = (-1, *[1] * self.point_dims)
        m = torch.tensor(mean, dtype=tt.dtype, device=tt.device).reshape(shape)
        s = torch.tensor(_safe(std), dtype=tt.dtype, device=tt.device).reshape(shape)
        return tt * s + m if inverse else (tt - m) / s

    def denormalise_targets(self, y: Target) -> Target:
        """Targets or predictions ``(..., C_out, h, w)`` (or a dict of them) back in physical
        units; the identity without ``normalise``."""
        return self._map(y, "targets", inverse=True)

    def denormalise_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs ``(..., C_in, H, W)`` back in physical units; the identity without ``normalise``."""
        return self._map(x, "inputs", inverse=True)

    def normalise_targets(self, y: Target) -> Target:
        """Physical targets ``(..., C_out, h, w)`` (or a dict) in the normalised units of ``y``."""
        return self._map(y, "targets", inverse=False)

    def normalise_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Physical inputs ``(..., C_in, H, W)`` in the normalised units of ``x``."""
        return self._map(x, "inputs", inverse=False)

    def __repr__(self) -> str:
        k = self.ks[0] if self.single else self.ks
        return (f"TaskDataset(task={self.task_name!r}, split={self.split!r}, size={self.size!r}, k={k}, "
                f"input_k={self.input_k}, normalise={self.normalise}, n={len(self)}, path='{self.path}')")


def _safe(std: np.ndarray) -> np.ndarray:
    """A constant channel (std 0) is only shifted, never divided by zero."""
    return np.where(std > 0, std, 1.0)


def task_datasets(task: Any = "darcy", size: str = "smoke", **kwargs: Any) -> dict[str, TaskDataset]:
    """``{"train": ..., "validation": ..., "test": ...}`` with the same options (``k``,
    ``normalise``, ...): all three normalised with the training statistics."""
    return {split: TaskDataset(task, split, size, **kwargs) for split in SPLITS}


__all__ = ["TaskDataset", "task_datasets", "SPLITS"]
