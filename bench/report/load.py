"""Load a run directory: ``results.csv`` (the long table) and ``run.json`` (provenance).

``results.csv`` columns (the runner's contract)::

    task, method, seed, size, k, unseen, metric, value, std, n, status, reason

``k`` is empty for cell-level costs; a cell that did not finish (or does not apply)
contributes one row with ``metric == "status"``. Parsing is strict about structure
(missing columns, duplicate measurements raise) and lenient about spelling (``True``,
``true``, ``1`` are all a true ``unseen``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REQUIRED = ("task", "method", "seed", "k", "metric", "value", "status")
OPTIONAL_TEXT = ("size", "reason")
STATUS_METRIC = "status"  # metric name of the one row a not-ok cell contributes
KEY = ("task", "method", "seed", "metric", "k")  # one measurement per key

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class Run:
    """A parsed run directory. ``results`` has typed columns (``k``: Int64, ``unseen``:
    boolean, both nullable); ``meta`` is ``run.json`` ({} if absent)."""

    path: Path
    name: str
    results: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        """Tasks in run.json order, then any others in order of appearance."""
        return _ordered(self.meta.get("tasks"), self.results["task"])

    @property
    def methods(self) -> list[str]:
        """Methods in run.json order (stable colours and rows), then the rest."""
        return _ordered(self.meta.get("methods"), self.results["method"])

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


def _numeric(col: pd.Series, name: str, path: Path) -> pd.Series:
    """Floats; empty -> NaN. Python's float() also reads the "nan"/"inf" a csv writer
    may emit (pandas' to_numeric rejects them for string columns)."""
    try:
        return pd.Series([float(s) if s.strip() else np.nan for s in col.astype(str)], index=col.index)
    except ValueError as err:
        raise ValueError(f"{path}: column {name!r} is not numeric: {err}") from err


def _boolean(col: pd.Series, path: Path) -> pd.Series:
    text = col.astype(str).str.strip().str.lower()
    bad = sorted(set(text) - _TRUE - _FALSE - {""})
    if bad:
        raise ValueError(f"{path}: column 'unseen' has non-boolean values {bad}")
    out = pd.Series(pd.NA, index=col.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE)] = False
    return out


def read_results(path: Path) -> pd.DataFrame:
    """Parse ``results.csv`` into typed columns; raise on a malformed table."""
    # keep_default_na=False: pandas would otherwise read the status "n/a" (and a task or
    # method literally named "NA"/"null") as a missing value.
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (have {list(raw.columns)})")
    df = pd.DataFrame(index=raw.index)
    for name in ("task", "method", "metric", "status"):
        df[name] = raw[name].astype(str).str.strip()
    for name in OPTIONAL_TEXT:
        df[name] = raw[name].astype(str) if name in raw.columns else ""
    seed = _numeric(raw["seed"], "seed", path)
    if seed.isna().any():
        raise ValueError(f"{path}: empty seed in rows {list(seed.index[seed.isna()][:5])}")
    df["seed"] = seed.astype(int)
    df["k"] = _numeric(raw["k"], "k", path).astype("Int64")
    df["unseen"] = _boolean(raw["unseen"], path) if "unseen" in raw.columns else pd.NA
    df["unseen"] = df["unseen"].astype("boolean")
    for name in ("value", "std", "n"):
        df[name] = _numeric(raw[name], name, path).astype(float) if name in raw.columns else np.nan
    dup = df.duplicated(subset=list(KEY), keep=False)
    if dup.any():
        shown = df.loc[dup, list(KEY)].head(4).to_dict("records")
        raise ValueError(f"{path}: {int(dup.sum())} duplicate measurements, e.g. {shown}")
    return df


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
    return Run(path=run_dir, name=run_dir.resolve().name, results=read_results(csv), meta=meta)
