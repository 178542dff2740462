"""Every metric the harness can name: the suite's registry (`bench.metrics.METRICS`),
the metrics the tasks declare (``Task.metrics``) and the retired ones that old run
directories may hold (`bench.metrics.RETIRED`), merged once. Reports,
``bench compare`` and ``bench list`` look a ``results.csv`` column up here, so a
metric's direction, tolerance and description live only in its own definition.

The tasks whose metrics are merged: the built-in ones (`tasks.TASKS`), those published
under the entry-point group ``neuroscale_bench.tasks`` (always: a report needs nothing
but the installed package), and the external ``package.module:Class`` tasks that this
process has loaded (`bench.names.task_class`: by a run, ``bench predict``, or
`include_tasks`). A ``results.csv`` names a task, not the metrics it declared, so a
process that reads the results of a ``module:Class`` task it has not loaded calls
`include_tasks` with the run's task names first.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from functools import lru_cache

from bench.metrics import METRICS, RETIRED
from bench.names import entry_point_tasks, external_tasks, parse_spec, task_class
from nskernel import Metric
from nskernel.errors import UsageError
from nskernel.metric import base_name


def metric_catalog() -> dict[str, Metric]:
    """``{name: Metric}`` of the suite's metrics, every task's (built-in, entry-point, and
    loaded ``module:Class``) and the retired. An entry point that cannot be loaded is
    warned about and left out (the run that names it fails with the reason)."""
    try:
        published = tuple(entry_point_tasks().items())
    except UsageError as e:
        warnings.warn(f"{e}; its task's metrics are not in the metric catalog", stacklevel=2)
        published = ()
    return _catalog(published + tuple(external_tasks().items()))


@lru_cache(maxsize=16)
def _catalog(external: tuple[tuple[str, type], ...]) -> dict[str, Metric]:
    from tasks import TASKS  # the tasks' metric declarations (imports their numerics)

    out = dict(METRICS)
    for name, cls in [*TASKS.items(), *external]:
        for m in cls.metrics:
            if out.setdefault(m.name, m) is not m:
                raise ValueError(f"metric {m.name!r} of task {name} clashes with another metric of that name")
    for name, m in RETIRED.items():  # last: only old run directories name them
        if out.setdefault(name, m) is not m:
            raise ValueError(f"retired metric {name!r} clashes with a current metric of that name")
    return out


def include_tasks(tasks: Iterable[str]) -> dict[str, str]:
    """Load the classes of ``tasks`` (names as ``results.csv`` has them, variants
    included) so that their metrics are in the catalog; ``{task: why}`` for those that
    cannot be loaded here (a report goes on without them)."""
    problems: dict[str, str] = {}
    for task in dict.fromkeys(tasks):
        try:
            task_class(parse_spec(task)[0])
        except UsageError as e:
            problems[task] = str(e)
    return problems


def metric_info(column: str) -> Metric:
    """The record of a ``results.csv`` metric column (``rollout_rel_l2@3`` included)."""
    catalog = metric_catalog()
    try:
        return catalog[base_name(column)]
    except KeyError:
        raise UsageError(f"unknown metric {column!r}; valid: {', '.join(catalog)} (rollouts as name@n; the "
                         "metrics of an external module:Class task are known once it is loaded: "
                         "bench.catalog.include_tasks)") from None


__all__ = ["include_tasks", "metric_catalog", "metric_info"]
