"""`Metric`: everything the suite knows about one score, declared once.

A metric is a record: its function (one signature for every metric), the direction of
"better", the default tolerance of the regression check, what it requires of a task or
a prediction, where reports show it, and a one-line description. The suite's metrics are
registered in ``bench.metrics.METRICS``; a task declares its own in ``Task.metrics`` (the
same type). Reports, ``bench compare`` and ``bench list`` read everything from these
records, so adding a metric is one definition in one file.

``fn(prediction, target, inputs, k, spec) -> (N,)`` returns one value per test sample;
aggregation (mean, spread, bootstrap intervals) is the harness's job. A *pooled* metric
(``pooled`` set) is a statistic of all test points together rather than a mean of
per-sample values (a calibration error, a rank histogram): its ``fn`` returns per-sample
sufficient statistics ``(N, m)`` and ``pooled(stats) -> float`` reduces them, so the value
does not depend on how the points are split into samples. Metrics with
``fn = None`` are measured by the harness itself (costs, rollouts); their records carry
the rest of the contract.

A ``results.csv`` column may carry a suffix after ``@`` (``rollout_rel_l2@3``: the metric
``rollout_rel_l2`` at horizon 3); `base_name` strips it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from nskernel.prediction import Prediction
    from nskernel.spec import TaskSpec

MetricFn = Callable[["Prediction", np.ndarray, np.ndarray, int, "TaskSpec"], np.ndarray]
Pooling = Callable[[np.ndarray], float]

#: where a metric is shown: report tables order their columns by group, LaTeX panels
#: group them, cross-task ranks use the headline metrics of "accuracy" and "physics"
GROUPS: tuple[str, ...] = ("accuracy", "physics", "uncertainty", "task", "rollout", "cost", "training")

#: what a metric may require; `Metric.unmet` names the first requirement not met
REQUIREMENTS: dict[str, str] = {
    "variance": "a predictive variance (probabilistic methods)",
    "samples": "draws from the predictive distribution (Prediction.samples)",
    "time_dependent": "a time-dependent task",
}


@dataclass(frozen=True)
class Tolerance:
    """A change counts in ``bench compare`` when it exceeds ``max(atol, rtol * |base|)``."""

    rtol: float
    atol: float = 0.0


def base_name(column: str) -> str:
    """The metric of a ``results.csv`` column: ``rollout_rel_l2@3`` -> ``rollout_rel_l2``."""
    return column.split("@", 1)[0]


def lower_is_better(value: float, direction: str) -> float:
    """``value`` mapped so that lower is better under ``direction``."""
    if direction == "lower":
        return value
    if direction == "higher":
        return -value
    if direction.startswith("target:"):
        return abs(value - float(direction.split(":", 1)[1]))
    raise ValueError(f"unknown metric direction {direction!r}; valid: lower, higher, target:<x>")


@dataclass(frozen=True)
class Metric:
    """One score. See the module docstring for ``fn``.

    * ``direction``: ``"lower"``, ``"higher"`` or ``"target:<x>"`` (closest to x is best).
    * ``tolerance``: the default of ``bench compare``; ``None``: not compared unless a
      tolerance is given explicitly (e.g. memory, which depends on the machine).
    * ``requires``: keys of `REQUIREMENTS`; a row is ``n/a`` with the reason when one is
      not met.
    * ``group``: one of `GROUPS`. ``per_k``: one value per factor k (False: per cell,
      e.g. training time). ``leaderboard``: a column of the default leaderboard (the
      value is recorded either way). ``headline``: in compact tables (ablations, ranks).
    * ``pooled``: reduces the per-sample statistics of ``fn`` to the value (see the
      module docstring); ``None``: the value is the mean of ``fn``'s per-sample values.
    * ``unit``: shown in headers; ``"count"`` formats as 12.3k. ``ratio_scale``: False
      where a relative change means nothing (a log-likelihood).
    """

    name: str
    description: str
    fn: MetricFn | None = None
    direction: str = "lower"
    tolerance: Tolerance | None = Tolerance(0.05, 1e-6)
    requires: tuple[str, ...] = ()
    group: str = "task"
    per_k: bool = True
    leaderboard: bool = True
    headline: bool = False
    unit: str = ""
    ratio_scale: bool = True
    pooled: Pooling | None = None

    def __post_init__(self) -> None:
        if "@" in self.name or not self.name:
            raise ValueError(f"metric name {self.name!r} must be non-empty and free of '@'")
        lower_is_better(0.0, self.direction)  # raises for an unknown direction
        if self.group not in GROUPS:
            raise ValueError(f"metric {self.name}: unknown group {self.group!r}; valid: {', '.join(GROUPS)}")
        unknown = [r for r in self.requires if r not in REQUIREMENTS]
        if unknown:
            raise ValueError(f"metric {self.name}: unknown requirement(s) {unknown}; valid: {', '.join(REQUIREMENTS)}")

    def unmet_by_task(self, spec: TaskSpec) -> str | None:
        """Why the task itself can never have this metric (whatever the method), or None:
        such metrics are left out of a task's results, not recorded ``n/a``."""
        if "time_dependent" in self.requires and not spec.time_dependent:
            return f"task {spec.name} is not time-dependent"
        return None

    def unmet(self, spec: TaskSpec, prediction: Prediction | None = None, probabilistic: bool = False) -> str | None:
        """Why this metric cannot be computed here (a row's ``n/a`` reason), or None."""
        for req in self.requires:
            if req == "variance" and (not probabilistic or prediction is None or prediction.var is None):
                return "deterministic method (no predictive variance)"
            if req == "samples" and (not probabilistic or prediction is None or prediction.samples is None):
                return "no predictive samples (a Gaussian summary only, or a deterministic method)"
        return self.unmet_by_task(spec)

    def score(self, value: float) -> float:
        """``value`` mapped so that lower is better (for ranks and comparisons)."""
        return lower_is_better(value, self.direction)
