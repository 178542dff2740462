"""Benchmark problems. ``TASKS`` maps a task name to its frozen dataclass."""

from bench.registry import build_registry
from tasks.convection import Convection
from tasks.darcy import Darcy

TASKS = build_registry([Darcy, Convection])

# Registered parameter variants (``name:field=value``) that ``--tasks all`` also runs.
TASK_VARIANTS: tuple[str, ...] = ()

__all__ = ["TASKS", "TASK_VARIANTS"]
