"""Load a run directory: ``results.csv`` (the long table) and ``run.json`` (provenance).

``results.csv`` columns (the runner's contract)::

    task, method, seed, size, k, unseen, metric, value, std, n, status, reason

``k`` is empty for cell-level costs; a cell that did not finish (or does not apply)
contributes one row with ``metric == "status"``. The parser is
`bench.records.read_results` (the one every reader uses).

A data-scaling run (``--n-train``) adds the column ``n_train``: the report then names
each sized cell's method by `bench.scaling.method_label` (``fno [N=64]``), so every
table and figure treats each training-set size as a method of its own; `Run.scaled`
maps such a label back to (method, N) for the scaling figure and table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.catalog import include_tasks
from bench.records import STATUS_METRIC, read_results
from bench.scaling import N_TRAIN, method_label

__all__ = ["Run", "load_run", "read_results", "STATUS_METRIC"]


@dataclass(frozen=True)
class Run:
    """A parsed run directory. ``results`` has typed columns (``k``: Int64, ``unseen``:
    boolean, both nullable); ``meta`` is ``run.json`` ({} if absent)."""

    path: Path
    name: str
    results: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    #: label -> (method, training-set size) of the sized cells of an ``--n-train`` run
    scaled: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        """Tasks in run.json order, then any others in order of appearance."""
        return _ordered(self.meta.get("tasks"), self.results["task"])

    @property
    def methods(self) -> list[str]:
        """Methods in run.json order (stable colours and rows), then the rest; a method's
        training-set sizes follow it, smallest first."""
        listed = self.meta.get("methods")
        if self.scaled:
            if not isinstance(listed, list):
                listed = list(dict.fromkeys(self.scaled.get(m, (m, 0))[0] for m in self.results["method"]))
            by_size = sorted(self.scaled.items(), key=lambda kv: kv[1][1])
            listed = [x for m in listed for x in [m, *(label for label, (base, _) in by_size if base == m)]]
        return _ordered(listed, self.results["method"])

    @property
    def seeds(self) -> list[int]:
        """Expected seeds: run.json's list when it has one, else those recorded."""
        listed = self.meta.get("seeds")
        if isinstance(listed, list) and all(isinstance(s, int) for s in listed):
            return sorted(set(listed) | set(self.results["seed"].tolist()))
        return sorted(set(self.results["seed"].tolist()))

    @property
    def k_train(self) -> set[int] | None:
        ks = self.meta.get("k_train")
        return {int(k) for k in ks} if isinstance(ks, list) else None

    @property
    def k_test(self) -> list[int]:
        ks = self.meta.get("k_test")
        return sorted(int(k) for k in ks) if isinstance(ks, list) else []


def _ordered(listed: Any, seen: pd.Series) -> list[str]:
    """``listed`` entries that occur in ``seen`` (so a spec like "all" is ignored), then
    the remaining ``seen`` values in order of first appearance."""
    present = list(dict.fromkeys(seen.tolist()))
    head = [x for x in listed if x in present] if isinstance(listed, list) else []
    return list(dict.fromkeys(head + present))


def load_run(run_dir: Path | str) -> Run:
    """Read ``RUN_DIR/results.csv`` and ``RUN_DIR/run.json``.

    Raises FileNotFoundError (naming the path) when results.csv is absent.
    """
    run_dir = Path(run_dir)
    csv = run_dir / "results.csv"
    if not csv.is_file():
        raise FileNotFoundError(f"no results table at {csv} (is {run_dir} a run directory?)")
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    results = read_results(csv)
    include_tasks(results["task"].unique())  # an external module:Class task's own metrics
    scaled: dict[str, tuple[str, int]] = {}
    if N_TRAIN in results:
        sized = results[N_TRAIN].notna()
        pairs = results.loc[sized, ["method", N_TRAIN]].drop_duplicates()
        scaled = {method_label(m, n): (str(m), int(n)) for m, n in pairs.itertuples(index=False)}
        results = results.assign(method=[method_label(m, n) for m, n in zip(results["method"], results[N_TRAIN])])
    return Run(path=run_dir, name=run_dir.resolve().name, results=results, meta=meta, scaled=scaled)
