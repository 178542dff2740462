"""`Budget`: how much training a method may do in one cell (the harness's per-size
tables of budgets live in ``bench.config``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Budget:
    """How much training a neural method may do in one cell.

    ``epochs`` is the schedule length; ``max_train_s`` stops training early (gracefully,
    recorded in the train log) when the wall clock runs out first.
    """

    epochs: int
    max_train_s: float
    batch_size: int
    #: whether the wall clock may shorten the cosine schedule. False: the schedule runs
    #: over steps only (deterministic); the time cap still stops training, recorded as
    #: ``stopped = "time_limit"``.
    anneal_on_time: bool = True
    #: the benchmark size this budget belongs to (methods with their own per-size
    #: settings, e.g. the PINNs' step counts, look them up by it); "" for a custom budget
    size: str = ""

    def __post_init__(self) -> None:
        if self.epochs < 0:  # 0: no training at all (untrained weights, e.g. for timing)
            raise ValueError(f"epochs must be non-negative, got {self.epochs}")
        if not self.max_train_s > 0:
            raise ValueError(f"max_train_s must be positive, got {self.max_train_s}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    def override(self, epochs: int | None = None, max_train_s: float | None = None) -> Budget:
        """This budget with the given fields replaced (None keeps a field): the
        ``--epochs`` / ``--max-train-s`` options of ``bench run``."""
        return replace(self, epochs=self.epochs if epochs is None else epochs,
                       max_train_s=self.max_train_s if max_train_s is None else max_train_s)

    def split(self, n: int) -> Budget:
        """The share of each of ``n`` networks trained one after another (ensemble
        members): ``1/n`` of the time cap and of the epochs, so an ensemble costs what
        one network costs. Epochs round up to at least one per member, so where epochs
        bind (smoke) an ensemble of ``n > epochs`` members costs ``n`` epochs."""
        if n < 1:
            raise ValueError(f"cannot split a budget into {n} shares")
        return replace(self, epochs=max(1, math.ceil(self.epochs / n)), max_train_s=self.max_train_s / n)

    def expected_train_s(self) -> float:
        """Rough training time for run plans: the time cap where it binds; for
        epoch-bound (smoke) budgets ~1 s per epoch, the measured order on a 2-core CPU."""
        return self.max_train_s if self.anneal_on_time else min(self.max_train_s, 1.0 * self.epochs)

    def expected_eval_s(self) -> float:
        """Rough scoring time of a neural method's cell (metrics, rollouts, timing) for
        run plans: ~2 s at the epoch-bound smoke size, ~10 s at the sizes bound by time."""
        return 10.0 if self.anneal_on_time else 2.0
