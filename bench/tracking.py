"""Optional experiment tracking (``bench run --log tensorboard|wandb``): each cell's
learning curve and final scores, logged by the driver as the cell's record arrives (so
it works the same with ``--jobs N`` and Ray), into the run directory.

* ``none`` (default): nothing is logged and nothing is imported.
* ``tensorboard``: ``<run>/tensorboard/<cell>/`` event files, one TensorBoard run per
  cell (``tensorboard --logdir <run>/tensorboard`` overlays them).
* ``wandb``: one Weights & Biases run per cell in **offline** mode under ``<run>/wandb/``
  (never the network; ``wandb sync`` uploads it later, if you want).

What is logged (`curve`, `scores`): per epoch (step = 1-based epoch) the training loss
``train/loss``, the validation error ``val/error`` and each loss term
``train_terms/<term>`` (an ensemble's curve is the mean over its members, as in the
record); at the end, for a cell whose status is ``ok``, every measurement that has a
value as ``score/<metric>`` (per-cell costs) or ``score/<metric>/k<k>``. A cell that is
not ``ok`` logs its curve, if it has one, and its status only. Only the cells computed
by this invocation are logged; a cell computed again replaces its TensorBoard folder.
Both libraries are optional (``pip install -e ".[tracking]"``) and imported only when
asked for. A tracking error never stops the run: it is reported and the records stand.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nskernel.errors import UsageError

TRACKERS = ("none", "tensorboard", "wandb")
INSTALL = 'pip install -e ".[tracking]"'
TENSORBOARD_DIR = "tensorboard"
WANDB_PROJECT = "neuroscale-bench"

Record = dict[str, Any]
Track = Callable[[Record], None]


def _tag(text: str) -> str:
    """A tag both backends accept unchanged (``rollout_rel_l2@3`` -> ``rollout_rel_l2_3``)."""
    return re.sub(r"[^-/\w.]", "_", text)


def curve(rec: Record) -> list[tuple[int, dict[str, float]]]:
    """The learning curve of a record: ``(epoch, {tag: value})`` per epoch, 1-based."""
    log = rec.get("train_log")
    if not isinstance(log, dict):
        return []
    series = {"train/loss": log.get("loss") or [], "val/error": log.get("val") or []}
    series.update({_tag(f"train_terms/{name}"): vals or [] for name, vals in (log.get("terms") or {}).items()})
    n = max(map(len, series.values()))
    return [(e + 1, {tag: float(vals[e]) for tag, vals in series.items() if e < len(vals)}) for e in range(n)]


def scores(rec: Record) -> dict[str, float]:
    """The final scores of an ``ok`` record: ``score/<metric>[/k<k>]`` -> value."""
    if rec.get("status") != "ok":
        return {}
    out = {}
    for m in rec.get("measurements") or []:
        value = m.get("value")
        if m.get("status") != "ok" or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        k = m.get("k")
        out[_tag(f"score/{m['metric']}" + (f"/k{k}" if k is not None else ""))] = float(value)
    return out


def _summary_writer() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError(f"--log tensorboard needs TensorBoard: {INSTALL} "
                         "(or pip install 'tensorboard>=2.14')") from None
    return SummaryWriter


def _wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise UsageError(f"--log wandb needs Weights & Biases: {INSTALL} (or pip install 'wandb>=0.16')") from None
    return wandb


def check_tracking(kind: str) -> None:
    """Refuse (`UsageError`, exit 2) an unknown tracker or one whose library is missing,
    before anything runs."""
    if kind not in TRACKERS:
        raise UsageError(f"unknown --log {kind!r}; valid: {', '.join(TRACKERS)}")
    if kind == "tensorboard":
        _summary_writer()
    elif kind == "wandb":
        _wandb()


def _cell_name(rec: Record) -> str:
    from bench.records import cell_id  # pandas: not for `bench --help`, which imports TRACKERS

    return cell_id(rec["task"], rec["method"], rec["seed"], rec.get("n_train"))


def _describe(rec: Record) -> dict[str, Any]:
    return {"task": rec["task"], "method": rec["method"], "seed": rec["seed"], "size": rec.get("size"),
            "status": rec["status"], "config_hash": rec.get("config_hash"), "config": rec.get("config"),
            "params": rec.get("params")}


class TensorBoardTracker:
    def __init__(self, run_dir: Path) -> None:
        self.writer_cls = _summary_writer()
        self.root = Path(run_dir) / TENSORBOARD_DIR

    def __call__(self, rec: Record) -> None:
        folder = self.root / _cell_name(rec)
        shutil.rmtree(folder, ignore_errors=True)  # a recomputed cell replaces its old curves
        writer = self.writer_cls(log_dir=str(folder))
        try:
            points = curve(rec)
            for epoch, values in points:
                for tag, value in values.items():
                    writer.add_scalar(tag, value, epoch)
            for tag, value in scores(rec).items():
                writer.add_scalar(tag, value, len(points))
            writer.add_text("cell", "```\n" + json.dumps(_describe(rec), indent=1, default=str) + "\n```")
        finally:
            writer.close()


class WandbTracker:
    def __init__(self, run_dir: Path) -> None:
        self.wandb = _wandb()
        self.run_dir = Path(run_dir)

    def __call__(self, rec: Record) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        run = self.wandb.init(mode="offline", dir=str(self.run_dir), project=WANDB_PROJECT,
                              group=self.run_dir.name, name=_cell_name(rec), config=_describe(rec))
        try:
            for epoch, values in curve(rec):
                run.log(values, step=epoch)
            run.summary.update({"status": rec["status"], **scores(rec)})
        finally:
            run.finish()


@contextlib.contextmanager
def open_tracker(kind: str, run_dir: Path, log: Callable[[str], None] = print) -> Iterator[Track]:
    """A function that logs one record, for the duration of a run."""
    check_tracking(kind)
    if kind == "none":
        yield lambda rec: None
        return
    tracker = TensorBoardTracker(run_dir) if kind == "tensorboard" else WandbTracker(run_dir)

    def track(rec: Record) -> None:
        try:
            tracker(rec)
        except Exception as e:  # noqa: BLE001 -- tracking is optional: report, keep the run going
            log(f"  --log {kind}: could not log {_cell_name(rec)}: {type(e).__name__}: {e}")

    yield track
