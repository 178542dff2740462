"""One cell of the matrix: (task, method with parameters, seed) -> one record.

`run_cell` never raises for a problem of the method: an exception, a NaN/Inf loss or
prediction, or running out of time becomes a ``failed`` / ``diverged`` / ``timeout``
record with the message, so the matrix goes on. Only ``KeyboardInterrupt`` propagates
(the cell then has no record and is re-run when the command is repeated).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import SCHEMA_VERSION
from bench.config import ROLLOUT_SAMPLES, TIMING_CAPS
from bench.costs import FineTiming, equal_error_rows, time_inference, timing_batch_size
from bench.data import config_hash, load_or_generate
from bench.ladder import Rung, ladder_for
from bench.memory import PeakMemory
from bench.metrics.core import ECE_LEVELS
from bench.names import build_method, build_task
from bench.provenance import provenance
from bench.records import measurement, record_path, write_json_atomic
from bench.scaling import n_train_fields
from bench.scoring import evaluate, evaluate_rollouts, scored_metrics, validation_score
from nskernel import Budget, Context, Dataset, Device, Factors, Task, TaskSpec, domain_not_supported
from nskernel.errors import CellTimeout, Diverged, NotApplicable

# The last dataset used in this process: cells are ordered by task, so consecutive cells
# share it without re-reading (and re-verifying) the file. One entry bounds the memory.
_DATA: dict[tuple[str, str, str], tuple[Task, Dataset, str]] = {}


@dataclass(frozen=True)
class CellConfig:
    """Everything a cell needs, resolved and validated once by the planner; plain values
    only, so it pickles to any executor."""

    task: str
    method: str
    seed: int
    size: str
    factors: Factors
    budget: Budget
    device: Device = Device("cpu")
    dtype: str = "float32"
    threads: int = 2
    timeout_s: float = 900.0
    data_dir: str = ""
    run_dir: str = ""
    progress: bool = False
    #: training writes a resumable checkpoint at most this often (0: every epoch)
    checkpoint_every_s: float = 30.0
    #: train on the first n_train samples of the training split (``--n-train``); None: all
    n_train: int | None = None
    #: the split the cell scores: "test" (a ``bench run`` cell) or "validation" (a tuning
    #: trial, `bench.tune`: fit, then score the validation split at the training factors;
    #: the test split is never predicted, timed or scored)
    scored_split: str = "test"
    #: measure the classical error-cost ladder (``--no-ladder``: its three equal-error rows
    #: are n/a); part of the identity only when off, so that a run with the ladder never
    #: resumes a record without it (and earlier records keep their hashes)
    ladder: bool = True

    def identity(self) -> dict[str, Any]:
        """What determines the cell's numbers (not where files go or how it is shown):
        the budget's mode, amount and batch, but not its wall-clock safety cap, which
        changes no number (a cell it stops is ``truncated``); the training-set size only
        when set, so the cells of a run without ``--n-train`` keep their hashes (and the
        scored split only when it is not the test split, for the same reason)."""
        b = self.budget
        amount = {"epochs": b.epochs} if b.mode == "epochs" else {"flops": b.flops}
        return {"task": self.task, "method": self.method, "seed": self.seed, "size": self.size,
                "k_train": list(self.factors.train), "k_test": list(self.factors.test),
                "device": str(self.device), "dtype": self.dtype,
                "budget": {"mode": b.mode, **amount, "batch_size": b.batch_size}, **n_train_fields(self.n_train),
                **({"scored_split": self.scored_split} if self.scored_split != "test" else {}),
                **({} if self.ladder else {"ladder": False})}

    @property
    def config_hash(self) -> str:
        return config_hash(self.identity())

    @property
    def path(self) -> Path:
        return record_path(Path(self.run_dir), self.task, self.method, self.seed, self.n_train)

    @property
    def checkpoint_dir(self) -> Path:
        """The cell's checkpoints: the trained model(s) and, while training, its state."""
        return Path(self.run_dir) / "checkpoints" / self.path.stem


@contextlib.contextmanager
def hard_deadline(seconds: float) -> Iterator[None]:
    """Raise `CellTimeout` after ``seconds`` even inside code that never checks the
    deadline (SIGALRM; main thread on POSIX only, elsewhere a no-op)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise CellTimeout(f"cell exceeded its hard time limit of {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def dataset_for(cfg: CellConfig) -> tuple[Task, Dataset, str]:
    """(task, dataset, checksum), generated or loaded once per process."""
    key = (cfg.task, cfg.size, cfg.data_dir)
    if key not in _DATA:
        _DATA.clear()
        _, task = build_task(cfg.task, cfg.size)
        ds, digest, _ = load_or_generate(task, Path(cfg.data_dir), progress=cfg.progress)
        _DATA[key] = (task, ds, digest)
    return _DATA[key]


def train_test(task: Task, data: Dataset, factors: Factors, n_train: int | None = None) -> tuple[Dataset, Dataset]:
    """The harness's split: the first ``task.n_train`` samples (or ``n_train`` of them) for
    training (targets at the training factors only, with the last ``task.n_val`` samples
    of the dataset as its validation split), the ``task.n_test`` after the training split
    for testing. A factor of 1 is the fine solution itself."""
    a, b, c = task.n_train, task.n_train + task.n_test, task.n_train + task.n_test + task.n_val
    if n_train is not None and not 1 <= n_train <= a:
        raise ValueError(f"n_train={n_train}: task {task.name} has {a} training samples (the maximum)")
    val = data.subset(slice(b, c)) if task.n_val else None
    train = data.subset(slice(0, a if n_train is None else n_train)).for_training(factors.train, validation=val)
    test = data.subset(slice(a, b))
    if 1 in factors.test:
        if test.fine is None:
            raise NotApplicable(f"task {task.name} stores no fine solution: nothing to score at k=1")
        test.targets[1] = test.fine
    return train, test


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _new_record(cfg: CellConfig) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION, "task": cfg.task, "method": cfg.method, "seed": cfg.seed,
        "size": cfg.size, **n_train_fields(cfg.n_train), **cfg.factors.as_dict(),
        "config": cfg.identity(), "config_hash": cfg.config_hash, "status": "ok", "error": None,
        "reason": "", "started": _now(), "measurements": [],
        **provenance(cfg.device, cfg.threads),
    }


def failure_record(cfg: CellConfig, error: str) -> dict[str, Any]:
    """Record (and write) a cell whose process died before it could record itself."""
    rec = {**_new_record(cfg), "status": "failed", "error": error, "finished": _now()}
    write_json_atomic(cfg.path, rec)
    return rec


def is_out_of_memory(e: BaseException) -> bool:
    """torch reports a failed CPU or CUDA allocation as a RuntimeError, not MemoryError."""
    text = str(e)
    return isinstance(e, MemoryError) or (
        isinstance(e, RuntimeError) and ("out of memory" in text.lower() or "can't allocate memory" in text))


def run_cell(cfg: CellConfig) -> dict[str, Any]:
    """Run one cell, write its record atomically, return the record."""
    rec = _new_record(cfg)
    t_start = time.monotonic()
    try:
        # The cooperative deadline (checked by the training loop) normally fires first;
        # the hard one stops code that never checks it.
        with hard_deadline(cfg.timeout_s + min(30.0, 0.25 * cfg.timeout_s)):
            _execute(cfg, rec, deadline=t_start + cfg.timeout_s)
    except NotApplicable as e:
        rec.update(status="n/a", reason=str(e), measurements=[])
    except Diverged as e:
        rec.update(status="diverged", error=str(e), measurements=[])
    except CellTimeout as e:
        rec.update(status="timeout", error=str(e), measurements=[])
    except MemoryError as e:
        rec.update(status="failed", error=f"out of memory: {e}", measurements=[])
    except Exception as e:  # noqa: BLE001 -- isolation is the point: record and go on
        tb = traceback.format_exc(limit=8)
        prefix = "out of memory: " if is_out_of_memory(e) else ""
        rec.update(status="failed", error=f"{prefix}{type(e).__name__}: {e}\n{tb}", measurements=[])
    rec["finished"] = _now()
    rec["wall_s"] = time.monotonic() - t_start
    write_json_atomic(cfg.path, rec)
    if rec["status"] in ("ok", "truncated", "n/a"):  # a failed cell keeps its state to resume from
        for path in cfg.checkpoint_dir.glob("train-*.pt"):
            path.unlink(missing_ok=True)
    return rec


def _claim_checkpoints(cfg: CellConfig) -> Path:
    """The cell's checkpoint folder, emptied if it holds another configuration's state
    (a changed command run with --overwrite): never resume someone else's training."""
    folder = cfg.checkpoint_dir
    tag = folder / "cell.json"
    if folder.exists():
        try:
            same = json.loads(tag.read_text()).get("config_hash") == cfg.config_hash
        except (OSError, ValueError, AttributeError):
            same = False
        if not same:
            shutil.rmtree(folder)
    if not tag.exists():
        write_json_atomic(tag, {"config_hash": cfg.config_hash, "config": cfg.identity()})
    return folder


def _save_snapshot(cfg: CellConfig, arrays: dict[str, np.ndarray]) -> str:
    """Write the fixed test sample's fields next to the records (atomically); returns
    the path relative to the run directory."""
    path = Path(cfg.run_dir) / "samples" / f"{cfg.path.stem}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez_compressed(tmp, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    os.replace(tmp, path)
    return str(path.relative_to(cfg.run_dir))


def _execute(cfg: CellConfig, rec: dict[str, Any], deadline: float) -> None:
    task, data, digest = dataset_for(cfg)
    spec = task.spec()
    rec["data_checksum"] = digest
    rec["fine_solver"] = spec.fine_solver_name
    _, method = build_method(cfg.method)
    rec["params"] = method.get_params()
    reason = domain_not_supported(method, spec) or method.not_applicable(spec)
    if reason:
        raise NotApplicable(reason)
    ctx = Context(seed=cfg.seed, device=cfg.device, dtype=cfg.dtype, threads=cfg.threads, progress=cfg.progress,
                  deadline=deadline, workdir=str(_claim_checkpoints(cfg)), checkpoint_every_s=cfg.checkpoint_every_s)
    ctx.apply()
    train, test = train_test(task, data, cfg.factors, cfg.n_train)
    rec["budget"] = dataclasses.asdict(cfg.budget)
    if cfg.scored_split == "validation":
        _execute_trial(cfg, rec, method, train, spec, ctx)
        return
    with PeakMemory(cfg.device) as mem:
        t0 = time.perf_counter()
        method.fit(train, spec, cfg.budget, ctx)
        train_s = time.perf_counter() - t0
        ctx.check_deadline("fit")
        # Asked after fit: per-instance solvers score fewer samples, set per size.
        test_all = test
        n_eval = method.max_eval_samples()
        if n_eval is not None:
            test = test.subset(slice(0, min(len(test), n_eval)))
            rec["eval_samples"] = len(test)
        artifacts: dict[str, Any] = {}
        rows = evaluate(method, spec, test, cfg.factors, ctx, scored_metrics(task.metrics), artifacts)
        rows += evaluate_rollouts(method, spec, test, cfg.factors, ctx, max_samples=ROLLOUT_SAMPLES.get(cfg.size))
    fine = FineTiming.for_cell(cfg.run_dir, cfg.task, cfg.size, cfg.device, cfg.threads)
    caps = TIMING_CAPS.get(cfg.size)
    timed = task.with_threads(cfg.threads).spec()  # every cost on the run's threads
    rows += time_inference(method, timed, test, cfg.factors, ctx, caps, fine)
    rungs, ladder_failed = _ladder(cfg, timed, test_all, caps)
    fine_row = next(r for r in rows if r["metric"] == "fine_s")
    # what generating the training and validation data costs (fine solves on the run's
    # threads), charged to the methods that learn from them
    n_data = len(train) + task.n_val
    data_s = fine_row["value"] / max(fine_row["n"], 1) * n_data if method.uses_training_data else 0.0
    rows.append(measurement("data_s", data_s, n=n_data) if np.isfinite(data_s) else
                measurement("data_s", np.nan, status="n/a", reason=fine_row.get("reason") or "no fine solver timing"))
    rows += equal_error_rows(rows, rungs, cfg.factors, (data_s if np.isfinite(data_s) else 0.0) + train_s,
                             failed=ladder_failed)
    n_params = method.n_params()
    gain = method.late_validation_gain()
    rows.append(measurement("late_val_gain", gain, status="ok") if gain is not None else
                measurement("late_val_gain", np.nan, status="n/a",
                            reason="no learning curve on a validation split long enough to judge"))
    rows += [
        measurement("train_s", train_s),
        measurement("peak_mem_mb", mem.peak_mb),
        measurement("n_params", float(n_params) if n_params is not None else np.nan,
                    status="ok" if n_params is not None else "n/a",
                    reason="" if n_params is not None else "non-parametric method"),
    ]
    rec["measurements"] = rows
    rec["calibration"] = {"levels": ECE_LEVELS.tolist(), "observed": artifacts["calibration"]}
    rec["snapshot"] = _save_snapshot(cfg, artifacts["snapshot"])
    rec["probabilistic"] = bool(method.probabilistic)
    _method_facts(cfg, rec, method, save=True)


def _execute_trial(cfg: CellConfig, rec: dict[str, Any], method: Any, train: Dataset, spec: Any,
                   ctx: Context) -> None:
    """A tuning trial (`bench.tune`): fit as a test cell does, then score the validation
    split only (``rec["validation"]``); the record's measurements are costs, no test metric."""
    with PeakMemory(cfg.device) as mem:
        t0 = time.perf_counter()
        method.fit(train, spec, cfg.budget, ctx)
        train_s = time.perf_counter() - t0
        ctx.check_deadline("fit")
        rec["validation"] = validation_score(method, train.validation, cfg.factors.train, ctx)
    n_params = method.n_params()
    rec["measurements"] = [measurement("train_s", train_s), measurement("peak_mem_mb", mem.peak_mb)] + (
        [measurement("n_params", float(n_params))] if n_params is not None else [])
    _method_facts(cfg, rec, method, save=False)  # the tuned variant is trained again by `bench run`


def _method_facts(cfg: CellConfig, rec: dict[str, Any], method: Any, save: bool) -> None:
    """What the fitted method says about itself (diagnostics, its checkpoint, truncation)."""
    diagnostics = method.diagnostics()
    clash = sorted(set(diagnostics) & set(rec))
    if clash:  # a method's facts must never overwrite what the harness recorded
        raise RuntimeError(f"{method.name}.diagnostics() returned keys the record already has: {clash}")
    rec.update(diagnostics)
    if save and method.save(cfg.checkpoint_dir):
        rec["checkpoint"] = str(cfg.checkpoint_dir.relative_to(cfg.run_dir))
    truncated = method.truncation()
    if truncated:  # measured, but never shown as a normal result
        rec.update(status="truncated", reason=truncated)


def _ladder(cfg: CellConfig, timed: TaskSpec, test: Dataset, caps: Any) -> tuple[list[Rung], str]:
    """The task's classical ladder (`bench.ladder`) and, where there is none, why."""
    if not cfg.ladder:
        return [], "the classical ladder was not measured in this run (--no-ladder)"
    try:
        return ladder_for(cfg.run_dir, cfg.task, cfg.size, cfg.device, cfg.threads, timed, test,
                          cfg.factors.test, test.inputs[: timing_batch_size(caps)]), ""
    except Exception as e:  # noqa: BLE001 -- the method's own scores stand; its ladder rows say why they are n/a
        return [], f"the classical ladder failed: {type(e).__name__}: {e}"
