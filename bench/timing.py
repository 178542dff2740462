"""Wall-clock timing that knows when the machine was busy.

These machines are shared: a two-thread timing collapses when another process runs.
`measure` times a callable (warm-up, median of repeats) and records the CPU used by
*other* processes during the measurement, read from ``/proc/stat`` minus this process's
own CPU time. A measurement taken under load is repeated; if the load persists it is
kept but flagged (``loaded=True``), and reports show the flag.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float | None:
    """CPU seconds spent busy by the whole machine since boot (Linux), else None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


@dataclass
class Timing:
    median_s: float
    times_s: list[float]
    other_load: float  # mean CPU cores used by other processes while measuring (nan if unknown)
    loaded: bool
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one_round(fn: Callable[[], Any], repeats: int) -> tuple[list[float], float]:
    busy0, cpu0, wall0 = _busy_seconds(), time.process_time(), time.perf_counter()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    busy1, cpu1, wall1 = _busy_seconds(), time.process_time(), time.perf_counter()
    if busy0 is None or busy1 is None:
        return times, float("nan")
    others = max(0.0, (busy1 - busy0) - (cpu1 - cpu0)) / max(wall1 - wall0, 1e-9)
    return times, others


def measure(
    fn: Callable[[], Any],
    *,
    repeats: int = 3,
    warmup: int = 1,
    max_load: float = 0.5,
    attempts: int = 3,
    pause_s: float = 1.0,
) -> Timing:
    """Median wall time of ``fn()`` over ``repeats`` after ``warmup`` calls.

    If other processes used more than ``max_load`` CPU cores on average, the round is
    retried (up to ``attempts``) after a pause; the least-loaded round is kept.
    """
    for _ in range(warmup):
        fn()
    best: tuple[list[float], float] | None = None
    n = 0
    for n in range(1, attempts + 1):  # noqa: B007 -- n (rounds taken) is reported after the loop
        times, load = _one_round(fn, repeats)
        if best is None or not load >= best[1]:
            best = (times, load)
        if not load > max_load:  # also true for nan (unknown load)
            break
        time.sleep(pause_s)
    assert best is not None
    times, load = best
    return Timing(statistics.median(times), times, load, bool(load > max_load), n)
