"""What the report needs from ``RUN_DIR/records/*.json`` beyond ``results.csv``.

Per cell (task, method, seed; the method named as `bench.report.load` names it in a
``--n-train`` run): the per-test-sample values of every metric (for
bootstrap CIs), the pooled calibration curve per k (reliability diagrams), whether the
method is probabilistic, and the path of the fixed test sample's fields
(``samples/<cell>.npz``: ``input``, ``target_k{k}``, ``mean_k{k}``, ``var_k{k}``).

Records are read with the runner's own reader (`bench.records.load_records`), which
warns about and skips a corrupt record; a run without records gives an empty index, and
every consumer then falls back to what ``results.csv`` alone can show.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.records import load_records
from bench.scaling import N_TRAIN, method_label

CellKey = tuple[str, str, int]  # (task, method, seed)


@dataclass(frozen=True)
class CellArtifacts:
    """One finished cell's per-sample values, calibration curve and snapshot path."""

    task: str
    method: str
    seed: int
    probabilistic: bool
    samples: dict[tuple[str, int | None], np.ndarray] = field(default_factory=dict)
    levels: np.ndarray | None = None  # quantile levels of the calibration curves
    observed: dict[int, np.ndarray] = field(default_factory=dict)  # k -> freq per level
    snapshot: Path | None = None  # absolute path of the npz, when the file exists
    #: learning curves, one per trained network: (steps, training loss, validation error)
    curves: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...] = ()

    def load_snapshot(self) -> dict[str, np.ndarray] | None:
        """The npz arrays as float64, or None when the cell has no snapshot."""
        if self.snapshot is None:
            return None
        with np.load(self.snapshot) as z:
            return {name: np.asarray(z[name], dtype=np.float64) for name in z.files}


def _samples(rec: dict[str, Any]) -> dict[tuple[str, int | None], np.ndarray]:
    out = {}
    for m in rec.get("measurements") or []:
        vals = m.get("samples")
        if m.get("status") != "ok" or not vals:
            continue  # cost metrics (one value per cell) and n/a rows carry no samples
        k = m.get("k")
        arr = np.asarray([math.nan if v is None else v for v in vals], dtype=np.float64)
        out[(str(m["metric"]), None if k is None else int(k))] = arr
    return out


def _curves(rec: dict[str, Any]) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """Per network (ensemble members separately): steps at the end of each epoch, the
    epoch's mean training loss and the validation error after it (NaN without one)."""
    logs = rec.get("member_logs") or ([rec["train_log"]] if isinstance(rec.get("train_log"), dict) else [])
    out = []
    for log in logs:
        steps, loss, val = (log.get(key) or [] for key in ("at_step", "loss", "val"))
        if not steps or len(loss) != len(steps):
            continue  # a record from before learning curves were kept
        v = np.asarray(val, dtype=np.float64) if len(val) == len(steps) else np.full(len(steps), np.nan)
        out.append((np.asarray(steps, dtype=np.float64), np.asarray(loss, dtype=np.float64), v))
    return tuple(out)


def _calibration(rec: dict[str, Any]) -> tuple[np.ndarray | None, dict[int, np.ndarray]]:
    calib = rec.get("calibration") or {}
    levels = calib.get("levels")
    observed = calib.get("observed") or {}
    if not levels or not observed:
        return None, {}
    lv = np.asarray(levels, dtype=np.float64)
    curves = {int(k): np.asarray(v, dtype=np.float64) for k, v in observed.items()}
    return lv, {k: v for k, v in curves.items() if v.shape == lv.shape}


class Artifacts:
    """Index of the cells' artifacts, keyed by (task, method, seed)."""

    def __init__(self, cells: dict[CellKey, CellArtifacts] | None = None) -> None:
        self._cells = dict(cells or {})

    def __len__(self) -> int:
        return len(self._cells)

    def __iter__(self) -> Iterator[CellArtifacts]:
        return iter(self._cells.values())

    def cell(self, task: str, method: str, seed: int) -> CellArtifacts | None:
        return self._cells.get((task, method, seed))

    def samples(self, task: str, method: str, seed: int, metric: str, k: int | None) -> np.ndarray | None:
        """Per-test-sample values of one measurement, or None if not recorded."""
        cell = self._cells.get((task, method, seed))
        return None if cell is None else cell.samples.get((metric, k))


def load_artifacts(run_dir: Path | str) -> Artifacts:
    """Index every ok record under ``run_dir/records`` (empty if there are none)."""
    run_dir = Path(run_dir)
    if not (run_dir / "records").is_dir():
        return Artifacts()
    cells: dict[CellKey, CellArtifacts] = {}
    for rec in load_records(run_dir):
        if rec.get("status") != "ok":
            continue
        snap = rec.get("snapshot")
        snap_path = run_dir / snap if isinstance(snap, str) and snap else None
        levels, observed = _calibration(rec)
        key = (str(rec["task"]), method_label(str(rec["method"]), rec.get(N_TRAIN)), int(rec["seed"]))
        cells[key] = CellArtifacts(
            task=key[0], method=key[1], seed=key[2],
            probabilistic=bool(rec.get("probabilistic", bool(observed))),
            samples=_samples(rec), levels=levels, observed=observed, curves=_curves(rec),
            snapshot=snap_path if snap_path is not None and snap_path.is_file() else None,
        )
    return Artifacts(cells)


@dataclass(frozen=True)
class TaskInfo:
    """Channel names, boundary and domain kind of a task, for labels and spectra."""

    in_names: tuple[str, ...] = ()
    out_names: tuple[str, ...] = ()
    boundary: str = ""
    #: `TaskSpec.kind`: "grid", "graph" ("" when the task cannot be built here)
    kind: str = ""


def task_info(task: str, size: str) -> TaskInfo:
    """From the task's `TaskSpec` when the task can be built here (cheap: a dataclass and
    its spec), else an empty `TaskInfo`: a report must not need the task's code."""
    try:
        from bench.names import build_task

        spec = build_task(task, size)[1].spec()
        return TaskInfo(tuple(spec.in_names), tuple(spec.out_names), str(spec.boundary), spec.kind)
    except Exception:  # noqa: BLE001 -- unknown/renamed task, missing optional deps: labels only
        return TaskInfo()
