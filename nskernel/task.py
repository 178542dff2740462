"""`Task`: the protocol every benchmark problem implements (a frozen dataclass)."""

from __future__ import annotations

from typing import ClassVar, Protocol

from nskernel.data import Dataset
from nskernel.metric import Metric
from nskernel.spec import TaskSpec


class Task(Protocol):
    """A PDE problem: a frozen dataclass with physical/discretisation fields."""

    name: ClassVar[str]
    #: the task's own metrics, scored besides the suite's: `Metric` records like those of
    #: ``bench.metrics`` (one definition each: function, direction, tolerance, description)
    metrics: ClassVar[tuple[Metric, ...]]
    #: samples per split; the dataset holds ``n_train + n_test + n_val`` samples in that
    #: order (validation after the test set, so the training and test sets do not depend
    #: on it), each split whole trajectories for time-dependent tasks
    n_train: int
    n_test: int
    n_val: int

    @classmethod
    def sized(cls, size: str) -> Task:
        """The task configured for a benchmark size in ``SIZES``."""
        ...

    def spec(self) -> TaskSpec: ...

    def with_threads(self, threads: int) -> Task:
        """This task with its solvers on ``threads`` CPU threads, for timing only: every
        cost the harness times (the fine solver, the classical ladder) uses the run's
        thread count, while the data keep the task's own setting (in a chaotic flow the
        thread count changes round-off, so it is part of a dataset's identity)."""
        ...

    def generate(self, n: int, seed: int, progress: bool = False) -> Dataset:
        """``n`` samples, deterministic in ``seed``; sample ``i`` depends on ``(seed, i)``
        only, so a smaller dataset is a prefix of a larger one."""
        ...
