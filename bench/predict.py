"""Trained methods outside the run that made them: reload a cell's checkpoint, predict,
and re-score it against its record (``python -m bench predict``).

`load_method` is the documented Python entry point::

    from bench.predict import load_method
    method, spec = load_method("results/small", task="darcy", method="fno", seed=0)
    pred = method.predict(inputs, k=8)        # inputs: (N, C_in, H, W) fine fields

A checkpoint holds tensors and plain metadata only and is read with
``torch.load(weights_only=True)``, so a run directory from someone else is safe to open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.cell import train_test
from bench.data import default_data_dir, load_or_generate
from bench.names import build_method, build_task
from bench.records import read_record, record_path
from bench.scoring import evaluate, scored_metrics
from nskernel import Context, Factors, Method, TaskSpec
from nskernel.errors import UsageError


def _record(run_dir: Path, task: str, method: str, seed: int, n_train: int | None = None) -> dict[str, Any]:
    path = record_path(Path(run_dir), task, method, seed, n_train)
    if not path.exists():
        size = "" if n_train is None else f", training-set size {n_train}"
        raise UsageError(f"{run_dir} has no record of task {task!r}, method {method!r}, seed {seed}{size} ({path})")
    return read_record(path)


def load_method(run_dir: Path | str, task: str, method: str, seed: int = 0, device: str = "cpu",
                threads: int | None = None, n_train: int | None = None) -> tuple[Method, TaskSpec]:
    """The fitted method of one cell of ``run_dir`` (``n_train``: the cell of that
    training-set size in a ``--n-train`` run), rebuilt from its record's parameters and
    loaded from its checkpoint, with the task's spec."""
    rec = _record(Path(run_dir), task, method, seed, n_train)
    if not rec.get("checkpoint"):
        raise UsageError(f"the cell {task} / {method} / seed {seed} saved no model (status {rec['status']}; "
                         "only neural methods keep a trained state)")
    _, task_obj = build_task(task, rec["size"])
    spec = task_obj.spec()
    _, fitted = build_method(method)
    ctx = Context(seed=seed, device=device, dtype=rec["config"]["dtype"], threads=threads or rec.get("threads", 2))
    ctx.apply()
    try:
        fitted.restore(Path(run_dir) / rec["checkpoint"], spec, ctx)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return fitted, spec


def rescore(run_dir: Path | str, task: str, method: str, seed: int = 0, data_dir: Path | str | None = None,
            metric: str = "rel_l2", n_train: int | None = None) -> list[dict[str, Any]]:
    """Score the reloaded method on the cell's test set again; one row per k with the
    recorded and the new value of ``metric``."""
    run_dir = Path(run_dir)
    rec = _record(run_dir, task, method, seed, n_train)
    fitted, spec = load_method(run_dir, task, method, seed, n_train=n_train)
    _, task_obj = build_task(task, rec["size"])
    data, digest, _ = load_or_generate(task_obj, Path(data_dir) if data_dir else default_data_dir())
    if digest != rec.get("data_checksum"):
        raise UsageError(f"the dataset's checksum {digest[:12]} differs from the record's "
                         f"{str(rec.get('data_checksum'))[:12]}: not the data the cell was scored on")
    factors = Factors(tuple(rec["k_train"]), tuple(rec["k_test"]))
    _, test = train_test(task_obj, data, factors)
    if rec.get("eval_samples"):
        test = test.subset(slice(0, rec["eval_samples"]))
    rows = evaluate(fitted, spec, test, factors, Context(seed=seed), scored_metrics(task_obj.metrics))
    recorded = {m["k"]: m["value"] for m in rec["measurements"] if m["metric"] == metric}
    return [{"k": r["k"], "recorded": recorded.get(r["k"]), "rescored": r["value"]}
            for r in rows if r["metric"] == metric]


__all__ = ["load_method", "rescore"]
