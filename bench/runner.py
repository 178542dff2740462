"""The matrix runner: plan the cells, skip finished ones, run the rest, rebuild results.

Resuming is the default: a cell whose record exists is not run again unless
``overwrite`` (all cells) or ``retry_failed`` (non-ok cells) is set. A record written
under a different configuration (e.g. other ``k_train``) is a clear error rather than a
silent mix of incompatible numbers. A run holds the run directory's lock (`bench.lock`)
from planning to the end, so two runs never write into one directory at once.

The run directory also gets the resolved options of the command that ran
(``experiment.toml``, `bench.experiment`), and, with ``--log``, each computed cell's
learning curve and scores are logged as its record arrives (`bench.tracking`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shlex
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from bench.cell import CellConfig
from bench.config import BUDGETS, CELL_TIMEOUT_S, TASK_BUDGETS
from bench.data import load_or_generate
from bench.executors import Executor, open_executor
from bench.experiment import FILENAME as EXPERIMENT_FILE
from bench.experiment import write_experiment
from bench.lock import RunLock
from bench.names import build_method, build_task, parse_spec, resolve_methods, resolve_tasks
from bench.provenance import provenance
from bench.records import read_record, write_json_atomic, write_results_csv
from bench.scaling import cell_sizes, check_sizes, check_task_sizes
from bench.tracking import check_tracking, open_tracker
from nskernel import Budget, Device, Factors, domain_not_supported, lookup
from nskernel.errors import UsageError


@dataclass(frozen=True)
class RunConfig:
    tasks: str = "all"
    methods: str = "all"
    size: str = "small"
    seeds: tuple[int, ...] = (0,)
    k_train: tuple[int, ...] = (4, 8)
    k_test: tuple[int, ...] = (4, 8, 16)
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 2
    out: Path = Path("results/small")
    data_dir: Path = Path()
    overwrite: bool = False
    retry_failed: bool = False
    timeout_s: float | None = None
    #: overrides of the size's training budget (`Budget.override`); None keeps the size's
    epochs: int | None = None
    max_train_s: float | None = None
    flops: float | None = None
    batch_size: int | None = None
    #: training-set sizes of a data-scaling run (`bench.scaling`); None: the whole training split
    n_train: tuple[int, ...] | None = None
    #: training writes a resumable checkpoint at most this often (seconds; 0: every epoch)
    checkpoint_every_s: float = 30.0
    progress: bool = True
    jobs: int = 1
    executor: str = "local"  # "local" (inline / process pool) or "ray"
    address: str | None = None  # Ray cluster address; None: $RAY_ADDRESS or a local instance
    #: experiment tracking of each computed cell: "none", "tensorboard" or "wandb" (bench.tracking)
    log: str = "none"
    #: measure the classical error-cost ladder (`bench.ladder`); False: equal-error rows n/a
    ladder: bool = True
    #: the resolved `bench run` options, written to <out>/experiment.toml (bench.experiment);
    #: None (a run started from Python): no experiment file
    experiment: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    command: str = field(default_factory=lambda: shlex.join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]))


@dataclass
class Plan:
    cells: list[CellConfig]
    todo: list[CellConfig]
    estimate_s: float


def _check_ks(task_name: str, task: Any, ks: Sequence[int]) -> None:
    spec = task.spec()
    for k in ks:
        spec.coarse_shape(k)  # raises ValueError naming the valid factors
        if k != 1 and k not in spec.k_values:  # k = 1: the fine solution itself
            raise UsageError(f"task {task_name} has no targets for k={k}; valid: 1, "
                             f"{', '.join(map(str, spec.k_values))}")


def resolve_budget(size: str, task: str = "", epochs: int | None = None, max_train_s: float | None = None,
                   flops: float | None = None, batch_size: int | None = None) -> Budget:
    """The training budget of a task's cells: the size's (with the task's changes of
    `TASK_BUDGETS`), with the ``--epochs`` / ``--flops`` / ``--batch-size`` /
    ``--max-train-s`` overrides applied; the one place it is built and validated."""
    if epochs is not None and flops is not None:
        raise UsageError("--epochs and --flops are two budget modes: give one of them")
    if epochs is not None and epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}")
    if flops is not None and not flops > 0:
        raise UsageError(f"--flops must be a positive number of FLOPs, got {flops}")
    if max_train_s is not None and not max_train_s > 0:
        raise UsageError(f"--max-train-s must be a positive number of seconds, got {max_train_s}")
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    base = lookup(BUDGETS, size, "size")
    changes = TASK_BUDGETS.get(size, {}).get(parse_spec(task)[0] if task else "", {})
    if changes:
        base = dataclasses.replace(base, **{k: type(getattr(base, k))(v) for k, v in changes.items()})
    return base.override(epochs=epochs, max_train_s=max_train_s, flops=flops, batch_size=batch_size)


def plan(cfg: RunConfig) -> Plan:
    """Validate every name and factor and list the cells; raises `UsageError` before
    anything is computed or written."""
    budget = resolve_budget(cfg.size, "", cfg.epochs, cfg.max_train_s, cfg.flops, cfg.batch_size)  # the options
    if cfg.checkpoint_every_s < 0:
        raise UsageError(f"--checkpoint-every must be non-negative, got {cfg.checkpoint_every_s}")
    if cfg.timeout_s is not None and not cfg.timeout_s > 0:
        raise UsageError(f"the cell timeout must be positive, got {cfg.timeout_s}")
    try:
        factors = Factors(tuple(cfg.k_train), tuple(cfg.k_test))
        device = Device(cfg.device)
    except ValueError as e:
        raise UsageError(str(e)) from None
    sizes = check_sizes(cfg.n_train) if cfg.n_train else ()
    tasks = resolve_tasks(cfg.tasks)
    methods = resolve_methods(cfg.methods)
    # A longer training cap moves the default cell limit by as much (evaluation keeps its share).
    timeout = cfg.timeout_s or CELL_TIMEOUT_S[cfg.size] + max(0.0, budget.max_train_s - BUDGETS[cfg.size].max_train_s)
    cells, todo, estimate = [], [], 0.0
    for t in tasks:
        _, task = build_task(t, cfg.size)
        if task.n_train < 1 or task.n_test < 1 or task.n_val < 0:
            raise UsageError(f"task {t}: n_train and n_test must be at least 1 and n_val at least 0, got "
                             f"{task.n_train}, {task.n_test} and {task.n_val}")
        check_task_sizes(t, task, cfg.size, sizes)
        try:
            _check_ks(t, task, tuple(cfg.k_train) + tuple(cfg.k_test))
        except ValueError as e:
            raise UsageError(str(e)) from None
        spec = task.spec()
        budget = resolve_budget(cfg.size, t, cfg.epochs, cfg.max_train_s, cfg.flops, cfg.batch_size)
        for m in methods:
            name, method = build_method(m)
            if domain_not_supported(method, spec) is None:  # else recorded n/a, whatever the parameters
                method.check_spec(spec)  # raises UsageError for parameters the task rejects
            for seed, n in ((s, n) for n in cell_sizes(sizes, method) for s in cfg.seeds):
                cell = CellConfig(task=t, method=name, seed=seed, size=cfg.size, factors=factors, budget=budget,
                                  device=device, dtype=cfg.dtype, threads=cfg.threads, timeout_s=timeout,
                                  data_dir=str(cfg.data_dir), run_dir=str(cfg.out), progress=cfg.progress,
                                  checkpoint_every_s=cfg.checkpoint_every_s, n_train=n, ladder=cfg.ladder)
                cells.append(cell)
                if _needs_run(cell, cfg):
                    todo.append(cell)
                    estimate += method.estimate_s(budget)
    return Plan(cells, todo, estimate)


def _needs_run(cell: CellConfig, cfg: RunConfig) -> bool:
    if cfg.overwrite or not cell.path.exists():
        return True
    try:
        rec = read_record(cell.path)
    except ValueError as e:
        warnings.warn(f"{e}; the cell will be recomputed", stacklevel=2)
        return True
    if rec["config_hash"] != cell.config_hash:
        raise UsageError(
            f"{cell.path} was produced by a different configuration (e.g. other --k-train/--k-test, "
            f"--epochs, --no-ladder or device); use --overwrite to replace it or --out for a new run directory"
        )
    return cfg.retry_failed and rec["status"] not in ("ok", "n/a")


def prepare_data(cells: Sequence[CellConfig], cfg: RunConfig, log: Callable[[str], None]) -> None:
    """Generate (or verify) each dataset once, here, before any cell runs: concurrent
    cells then only read it, and data generation never counts against a cell."""
    for task_spec in dict.fromkeys(c.task for c in cells):
        _, task = build_task(task_spec, cfg.size)
        try:
            _, digest, path = load_or_generate(task, Path(cfg.data_dir), progress=cfg.progress)
        except PermissionError as e:
            raise UsageError(f"cannot write the dataset cache {cfg.data_dir}: {e.strerror or e}") from None
        log(f"data: {task_spec} ({task.n_train} train + {task.n_test} test + {task.n_val} validation samples) "
            f"{path} sha256 {digest[:12]}")


def remove_debris(run_dir: Path) -> None:
    """Delete temporary files left by a killed run (never under a record's real name).
    Only called while holding the run directory's lock, so no writer owns them."""
    for pattern in (".*.tmp", ".*.tmp.npz"):  # the temporary names of every atomic write
        for path in Path(run_dir).rglob(pattern):
            path.unlink(missing_ok=True)


def run(cfg: RunConfig, log: Callable[[str], None] = print) -> dict[str, int]:
    """Run the matrix; returns the count of cells per status (all cells of the plan)."""
    plan(cfg)  # validate everything before anything is started or written
    check_tracking(cfg.log)  # an unknown tracker or a missing library: exit 2, nothing written
    out = Path(cfg.out)
    with open_executor(cfg.executor, cfg.jobs, cfg.address, cfg.threads, cfg.device) as execute, RunLock(out):
        return _run_locked(cfg, out, execute, log)


def _run_locked(cfg: RunConfig, out: Path, execute: Executor, log: Callable[[str], None]) -> dict[str, int]:
    p = plan(cfg)  # again, under the lock: another run may have finished cells meanwhile
    remove_debris(out)
    meta_path = out / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.update(
        name=out.name, command=cfg.command, size=cfg.size, tasks=sorted({c.task for c in p.cells}),
        methods=sorted({c.method for c in p.cells}), seeds=list(cfg.seeds), k_train=list(cfg.k_train),
        k_test=list(cfg.k_test), budgets={c.task: dataclasses.asdict(c.budget) for c in p.cells},
        executor=cfg.executor, provenance=_driver_provenance(cfg),
        started=meta.get("started") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    meta.pop("n_train", None)  # the training-set sizes of this invocation, if any
    if cfg.n_train:
        meta["n_train"] = list(check_sizes(cfg.n_train))
    if cfg.experiment is not None:  # the options of this invocation, resolved; run.json names the file
        write_experiment(out, cfg.experiment, cfg.command)
        meta["experiment"] = EXPERIMENT_FILE
    write_json_atomic(meta_path, meta)
    done = len(p.cells) - len(p.todo)
    jobs = f" on {cfg.jobs} workers" if cfg.jobs > 1 else ""
    log(f"plan: {len(p.cells)} cells ({done} already done, {len(p.todo)} to run), "
        f"rough estimate {p.estimate_s / max(cfg.jobs, 1) / 60:.1f} min{jobs} -> {out}")
    t0 = time.monotonic()
    prepare_data(p.todo, cfg, log)
    bar = tqdm(total=len(p.todo), desc="cells", unit="cell", disable=not cfg.progress)
    with open_tracker(cfg.log, out, log) as track:  # records arrive here from every executor
        for cell, rec in execute(p.todo):
            bar.update()
            size = "" if cell.n_train is None else f" N={cell.n_train}"
            bar.set_postfix_str(f"{cell.task} | {cell.method} | seed {cell.seed}{size}")
            if rec["status"] not in ("ok", "n/a"):
                log(f"  {rec['status']}: {cell.task} {cell.method} seed {cell.seed}{size}: "
                    f"{(rec.get('error') or '').splitlines()[0] if rec.get('error') else ''}")
            write_results_csv(out)
            track(rec)
    bar.close()
    write_results_csv(out)
    meta["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    meta["wall_s"] = meta.get("wall_s", 0.0) + (time.monotonic() - t0)
    write_json_atomic(meta_path, meta)
    return Counter(read_record(c.path)["status"] for c in p.cells)


def _driver_provenance(cfg: RunConfig) -> dict[str, Any]:
    """This machine's provenance; with Ray the driver need not have the cells' GPU (each
    record carries its worker's own)."""
    if cfg.executor == "local":
        return provenance(cfg.device, cfg.threads)
    return {**provenance("cpu", cfg.threads), "device": cfg.device}
