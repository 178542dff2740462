"""Data-scaling runs (``bench run --n-train 64,128,256``): the same cell at several
training-set sizes.

A size N trains on the **first N samples of the task's fixed training split**
(`bench.cell.train_test`); the dataset, its cache file and the test and validation
splits are those of the task, so the points of a curve differ in the training data only.
N is part of a cell's identity only when given (`n_train_fields`): a run without the option has
the records, hashes and file names it always had. Methods that learn nothing from data
(``uses_training_data = False``: the classical coarse solvers, persistence, the
per-instance PINNs) are run once, as they would be without the option; the report draws
them as horizontal lines (`bench.report.scaling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nskernel.errors import UsageError

#: the record field (and results.csv column) holding a cell's training-set size
N_TRAIN = "n_train"


def n_train_fields(n_train: int | None) -> dict[str, int]:
    """``{"n_train": N}`` for a sized cell, ``{}`` otherwise: what a cell's identity and
    record gain from the option."""
    return {} if n_train is None else {N_TRAIN: int(n_train)}


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """The ``--n-train`` sizes, sorted and without repeats; `UsageError` for a size
    below 1."""
    bad = [n for n in sizes if n < 1]
    if bad:
        raise UsageError(f"--n-train sizes must be at least 1, got {', '.join(map(str, bad))}")
    return tuple(sorted(set(sizes)))


def check_task_sizes(task_name: str, task: Any, size: str, sizes: Sequence[int]) -> None:
    """`UsageError` when a size exceeds the task's training split, naming the maximum."""
    over = [n for n in sizes if n > task.n_train]
    if over:
        raise UsageError(f"--n-train {', '.join(map(str, over))}: task {task_name} has {task.n_train} training "
                         f"samples at size {size}; the largest training-set size is {task.n_train}")


def cell_sizes(sizes: Sequence[int] | None, method: Any) -> tuple[int | None, ...]:
    """The training-set sizes to run ``method`` at: each of ``sizes`` for a method that
    learns from data, once (``None``: the whole split) for one that does not or without
    the option."""
    return tuple(sizes) if sizes and method.uses_training_data else (None,)


def method_label(method: str, n_train: Any) -> str:
    """How reports name a method trained on ``n_train`` samples (``fno [N=64]``); the
    method itself when no size is set (``None`` or a missing value)."""
    try:
        n = int(n_train)
    except (TypeError, ValueError):
        return method
    return f"{method} [N={n}]"
