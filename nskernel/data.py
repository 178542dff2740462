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
    During training the harness hands a
    method a dataset restricted to ``k_train`` and without ``fine``, so no method can
    peek at the unseen factor.
    """

    inputs: np.ndarray
    targets: dict[int, np.ndarray]
    fine: np.ndarray | None = None
    rollouts: dict[int, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, idx: Any) -> Dataset:
        return Dataset(
            inputs=self.inputs[idx],
            targets={k: v[idx] for k, v in self.targets.items()},
            fine=None if self.fine is None else self.fine[idx],
            rollouts={k: v[idx] for k, v in self.rollouts.items()},
            meta=dict(self.meta),
        )

    def for_training(self, k_train: tuple[int, ...]) -> Dataset:
        """The view a method may train on: targets for ``k_train`` only, no fine field."""
        missing = [k for k in k_train if k not in self.targets]
        if missing:
            raise ValueError(f"dataset has no targets for k={missing}")
        return Dataset(
            inputs=self.inputs,
            targets={k: self.targets[k] for k in k_train},
            fine=None,
            meta=dict(self.meta),
        )
