"""Where cells run.

* ``local`` (default): one after another in this process (``--jobs 1``), or a pool of
  spawned worker processes (``--jobs N``).
* ``ray``: each cell is a Ray task on a local Ray instance (started and stopped here) or
  on an existing cluster (``--address``); see docs/distributed.md.

Executors only map `run_cell` over cell configs; records are written by the cell itself
(atomically), so an executor that dies loses at most the cells in flight, which the next
run resumes. A worker that dies (e.g. killed by the out-of-memory killer) gets a
``failed`` record naming the cause; the other cells are unaffected. Timings taken while
several cells run at once are flagged by the load monitor (`bench.timing`): use
``--jobs 1`` for speedup numbers you want to publish.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing as mp
import os
import signal
import socket
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from bench.cell import CellConfig, failure_record, run_cell
from bench.records import read_record, write_json_atomic
from nskernel import Device
from nskernel.errors import UsageError

Record = dict[str, Any]
Executor = Callable[[Sequence[CellConfig]], Iterator[tuple[CellConfig, Record]]]
EXECUTORS = ("local", "ray")
RAY_REQUIREMENT = "ray>=2.9"
# The local Ray instance stores no large objects (cells receive configs and return
# records); a small store keeps it from reserving a share of /dev/shm.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2
_SPAWN = mp.get_context("spawn")  # not fork: forking a process running torch/OpenMP threads can deadlock


def run_inline(cells: Sequence[CellConfig]) -> Iterator[tuple[CellConfig, Record]]:
    for cell in cells:
        yield cell, run_cell(cell)


def _death(exitcode: int | None) -> str:
    """What a worker's exit code says about how it died."""
    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode).name
        except ValueError:
            sig = f"signal {-exitcode}"
        why = " (usually the operating system's out-of-memory killer)" if sig == "SIGKILL" else ""
        return f"worker process died: killed by {sig}{why}"
    return f"worker process died with exit code {exitcode}"


def run_isolated(cell: CellConfig) -> Record:
    """Run one cell in a fresh process of its own, so that its death is its alone."""
    proc = _SPAWN.Process(target=run_cell, args=(cell,), name=f"cell {cell.path.stem}")
    proc.start()
    proc.join()
    if proc.exitcode == 0:
        try:
            return read_record(cell.path)
        except ValueError as e:
            return failure_record(cell, f"worker process exited without a valid record: {e}")
    return failure_record(cell, _death(proc.exitcode))


def run_pool(cells: Sequence[CellConfig], jobs: int) -> Iterator[tuple[CellConfig, Record]]:
    """Cells in ``jobs`` spawned worker processes.

    When a worker dies, `ProcessPoolExecutor` fails *every* unfinished cell, not only the
    one that killed it. Only the first few unfinished cells (in submission order) can
    have been running, because the pool hands out work in that order and queues at most
    about one extra call; those are re-run each in a process of its own (so the culprit
    alone gets a ``failed`` record), and the rest go to a fresh pool.
    """
    remaining = list(cells)
    while remaining:
        broken: list[CellConfig] = []
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_SPAWN) as pool:
            futures = {pool.submit(run_cell, c): c for c in remaining}
            for fut in as_completed(futures):
                cell = futures[fut]
                try:
                    yield cell, fut.result()
                except BrokenProcessPool:
                    broken.append(cell)
                except Exception as e:  # e.g. a result that cannot be sent back
                    yield cell, failure_record(cell, f"worker error: {type(e).__name__}: {e}")
        order = {c: i for i, c in enumerate(remaining)}
        broken.sort(key=order.__getitem__)
        suspects, remaining = broken[: 2 * jobs], broken[2 * jobs:]  # 2x: margin over the queue depth
        with ThreadPoolExecutor(max_workers=jobs) as threads:
            isolated = {threads.submit(run_isolated, c): c for c in suspects}
            for fut in as_completed(isolated):
                yield isolated[fut], fut.result()


# --------------------------------------------------------------------------- Ray
def import_ray() -> Any:
    """Ray, imported only when asked for; `UsageError` (exit 2) if it is not installed."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray: pip install '{RAY_REQUIREMENT}' "
                         "(or pip install -e '.[ray]')") from None
    return ray


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cell_resources(cell: CellConfig) -> dict[str, float]:
    """Ray resources of one cell: its CPU threads, and one whole GPU for a CUDA device."""
    return {"num_cpus": cell.threads, "num_gpus": 1 if cell.device.is_cuda else 0}


def check_cluster(ray: Any, threads: int, device: str) -> None:
    """Refuse (exit 2) a run no node could ever schedule, instead of waiting forever."""
    need = {"CPU": float(threads), **({"GPU": 1.0} if Device(device).is_cuda else {})}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not any(all(res.get(k, 0.0) >= v for k, v in need.items()) for res in nodes):
        have = "; ".join(f"CPU {r.get('CPU', 0):g}, GPU {r.get('GPU', 0):g}" for r in nodes) or "no live nodes"
        wanted = ", ".join(f"{k} {v:g}" for k, v in need.items())
        raise UsageError(f"no Ray node offers what one cell needs ({wanted}); "
                         f"the cluster has: {have}. Lower --threads or use another --device.")


def _ray_failure(ray: Any, cell: CellConfig, err: Exception) -> Record:
    if isinstance(err, ray.exceptions.OutOfMemoryError):
        return failure_record(cell, f"out of memory: Ray killed the worker: {err}")
    if isinstance(err, ray.exceptions.WorkerCrashedError):
        return failure_record(cell, f"worker process died (Ray): {err}")
    return failure_record(cell, f"Ray task failed: {type(err).__name__}: {err}")


def run_ray(cells: Sequence[CellConfig], ray: Any) -> Iterator[tuple[CellConfig, Record]]:
    """One Ray task per cell; records are written by the task into the (shared) run dir.

    Tasks are not retried (``max_retries=0``): a cell that crashed its worker would most
    likely crash it again; ``--retry-failed`` re-runs it deliberately.
    """
    # Workers may start in another directory (or on another machine): absolute paths.
    cells = [dataclasses.replace(c, run_dir=str(Path(c.run_dir).resolve()), data_dir=str(Path(c.data_dir).resolve()),
                                 progress=False) for c in cells]
    remote = ray.remote(run_cell)
    refs = {remote.options(max_retries=0, name=c.path.stem, **cell_resources(c)).remote(c): c for c in cells}
    warned = False
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            cell = refs.pop(done[0])
            try:
                rec = ray.get(done[0])
            except Exception as e:  # noqa: BLE001 -- the worker died or Ray failed: record it
                yield cell, _ray_failure(ray, cell, e)
                continue
            if not cell.path.exists():
                # The worker wrote to a directory this machine does not see: keep the
                # record anyway (sample snapshots stay on the worker).
                if not warned:
                    warnings.warn(f"records written by Ray workers are not visible in {cell.run_dir}: the run "
                                  "directory is not shared; the driver writes them (see docs/distributed.md)",
                                  stacklevel=2)
                    warned = True
                write_json_atomic(cell.path, rec)
            yield cell, rec
    finally:
        for ref in refs:  # interrupted: stop what is still queued or running
            ray.cancel(ref, force=True)


def check_reachable(address: str) -> None:
    """Fail fast on a HOST:PORT (or ray://HOST:PORT) nothing listens on: Ray itself keeps
    retrying for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not (host and port.isdigit()):
        return  # 'auto', 'local' or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise UsageError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


@contextlib.contextmanager
def ray_session(address: str | None, threads: int, device: str) -> Iterator[Any]:
    """Connect to the cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local Ray
    instance with this machine's cores; disconnect (and stop a local one) afterwards."""
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS")
    owned = not ray.is_initialized()
    if owned:
        try:
            if address:
                check_reachable(address)
                ray.init(address=address, logging_level=logging.WARNING)
            else:
                # "local": a new instance even if `ray start` left one running here (use --address auto for that)
                ray.init(address="local", num_cpus=_cpus(), include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UsageError(f"cannot start or reach Ray{f' at {address}' if address else ''}: {e}") from None
    try:
        check_cluster(ray, threads, device)
        yield ray
    finally:
        if owned:
            ray.shutdown()


@contextlib.contextmanager
def open_executor(kind: str = "local", jobs: int = 1, address: str | None = None, threads: int = 1,
                  device: str = "cpu") -> Iterator[Executor]:
    """The executor for ``kind``, with whatever it needs started for the run's duration."""
    if kind == "local":
        yield executor(jobs)
    elif kind == "ray":
        with ray_session(address, threads, device) as ray:
            yield lambda cells: run_ray(cells, ray)
    else:
        raise UsageError(f"unknown executor {kind!r}; valid: {', '.join(EXECUTORS)}")


def executor(jobs: int) -> Executor:
    """The local executor: inline for one job, else a process pool."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    return run_inline if jobs == 1 else (lambda cells: run_pool(cells, jobs))
