"""Every metric the harness can name: the suite's registry (`bench.metrics.METRICS`),
the metrics the registered tasks declare (``Task.metrics``) and the retired ones that old
run directories may hold (`bench.metrics.RETIRED`), merged once. Reports,
``bench compare`` and ``bench list`` look a ``results.csv`` column up here, so a
metric's direction, tolerance and description live only in its own definition."""

from __future__ import annotations

from functools import lru_cache

from bench.metrics import METRICS, RETIRED
from nskernel import Metric
from nskernel.errors import UsageError
from nskernel.metric import base_name


@lru_cache(maxsize=1)
def metric_catalog() -> dict[str, Metric]:
    """``{name: Metric}`` of the suite's metrics, every registered task's and the retired."""
    from tasks import TASKS  # the tasks' metric declarations (imports their numerics)

    out = dict(METRICS)
    for cls in TASKS.values():
        for m in cls.metrics:
            if out.setdefault(m.name, m) is not m:
                raise ValueError(f"metric {m.name!r} of task {cls.name} clashes with another metric of that name")
    for name, m in RETIRED.items():  # last: only old run directories name them
        if out.setdefault(name, m) is not m:
            raise ValueError(f"retired metric {name!r} clashes with a current metric of that name")
    return out


def metric_info(column: str) -> Metric:
    """The record of a ``results.csv`` metric column (``rollout_rel_l2@3`` included)."""
    catalog = metric_catalog()
    try:
        return catalog[base_name(column)]
    except KeyError:
        raise UsageError(f"unknown metric {column!r}; valid: {', '.join(catalog)} (rollouts as name@n)") from None


__all__ = ["metric_catalog", "metric_info"]
