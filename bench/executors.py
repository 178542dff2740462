"""Where cells run. ``inline``: one after another in this process (default, ``--jobs 1``);
``pool``: a pool of worker processes (``--jobs N``), each cell isolated in a worker.

Executors only map `run_cell` over cell configs; records are written by the cell itself
(atomically), so an executor that dies loses at most the cells in flight. Timings taken
while several cells run at once are flagged by the load monitor (`bench.timing`): use
``--jobs 1`` for speedup numbers you want to publish.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from bench.cell import CellConfig, failure_record, run_cell

Record = dict[str, Any]


def run_inline(cells: Sequence[CellConfig]) -> Iterator[tuple[CellConfig, Record]]:
    for cell in cells:
        yield cell, run_cell(cell)


def run_pool(cells: Sequence[CellConfig], jobs: int) -> Iterator[tuple[CellConfig, Record]]:
    """Cells in ``jobs`` spawned worker processes (spawn, not fork: forking a process
    that already runs torch/OpenMP threads can deadlock)."""
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_cell, c): c for c in cells}
        for fut in as_completed(futures):
            cell = futures[fut]
            try:
                yield cell, fut.result()
            except Exception as e:  # the worker itself died (e.g. killed by the OOM killer)
                yield cell, failure_record(cell, f"worker process died: {type(e).__name__}: {e}")


def executor(jobs: int) -> Callable[[Sequence[CellConfig]], Iterator[tuple[CellConfig, Record]]]:
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    return run_inline if jobs == 1 else (lambda cells: run_pool(cells, jobs))
