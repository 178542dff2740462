"""`Dataset`: the samples of one task, as every layer sees them (NumPy arrays)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Dataset:
    """Samples of one task: fine inputs, (optionally) fine solutions, coarse targets.

    ``targets[k]`` is ``R_k`` of the fine solution. Time-dependent tasks may add
    ``rollouts[k]``: ``(N, 1 + max(rollout_horizons), C, H/k, W/k)`` filtered
    trajectories sampled every horizon, starting at ``R_k`` of the input state.
    During training the harness hands a method a dataset restricted to ``k_train`` and
    without ``fine``, so no method can peek at the unseen factor; its ``validation`` is
    the validation split (the same view), which methods use for model selection and
    tuning. The test set never reaches a method's ``fit``.

    ``static``: arrays that belong to the task rather than to a sample (a graph task's
    edges, node features and partition levels, the same as its ``TaskSpec.graph``),
    stored with the data so that a dataset file is self-contained; empty on grids.
    """

    inputs: np.ndarray
    targets: dict[int, np.ndarray]
    fine: np.ndarray | None = None
    rollouts: dict[int, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    validation: Dataset | None = None
    static: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, idx: Any) -> Dataset:
        return Dataset(
            inputs=self.inputs[idx],
            targets={k: v[idx] for k, v in self.targets.items()},
            fine=None if self.fine is None else self.fine[idx],
            rollouts={k: v[idx] for k, v in self.rollouts.items()},
            meta=dict(self.meta),
            static=dict(self.static),
        )

    def for_training(self, k_train: tuple[int, ...], validation: Dataset | None = None) -> Dataset:
        """The view a method may train on: targets for ``k_train`` only (``k = 1`` is the
        fine solution itself), no fine field; ``validation`` gets the same view."""
        targets = dict(self.targets)
        if 1 in k_train and 1 not in targets and self.fine is not None:
            targets[1] = self.fine
        missing = [k for k in k_train if k not in targets]
        if missing:
            raise ValueError(f"dataset has no targets for k={missing}")
        return Dataset(
            inputs=self.inputs,
            targets={k: targets[k] for k in k_train},
            fine=None,
            meta=dict(self.meta),
            validation=None if validation is None else validation.for_training(k_train),
            static=dict(self.static),
        )
