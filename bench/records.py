"""Per-cell result records and the long ``results.csv`` built from them.

A record is one JSON file per cell (task, method with parameters, seed, and the
training-set size of a ``--n-train`` run) under
``<run dir>/records/``, written atomically (temp file + rename). ``results.csv`` is
always rebuilt from the records, so it can never disagree with them.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import SCHEMA_VERSION
from bench.scaling import N_TRAIN  # a record field; when any record has it, a results.csv column after seed

#: ``truncated``: training was stopped by the wall-clock safety cap; its measurements stay
#: in the record, but results.csv (and so every table) shows the status, not the numbers
STATUSES = ("ok", "failed", "diverged", "timeout", "truncated", "n/a")
CSV_COLUMNS = ["task", "method", "seed", "size", "k", "unseen", "metric", "value", "std", "n", "status", "reason"]
REQUIRED = ("schema_version", "task", "method", "seed", "status", "config_hash", "measurements")


def cell_id(task: str, method: str, seed: int, n_train: int | None = None) -> str:
    """A filesystem-safe, unique, readable file stem for a cell; a training-set size
    (``--n-train``) adds ``__n<N>``."""
    safe = lambda s: re.sub(r"[^A-Za-z0-9_.=-]+", "_", s)  # noqa: E731
    return f"{safe(task)}__{safe(method)}__seed{seed}" + (f"__n{n_train}" if n_train is not None else "")


def record_path(run_dir: Path, task: str, method: str, seed: int, n_train: int | None = None) -> Path:
    return Path(run_dir) / "records" / f"{cell_id(task, method, seed, n_train)}.json"


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=_json_default, allow_nan=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def read_record(path: Path) -> dict[str, Any]:
    """Load and validate one record; raises ``ValueError`` for a corrupt one."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"unreadable record {path}: {e}") from None
    if not isinstance(rec, dict):
        raise ValueError(f"record {path} is not a JSON object")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"record {path} lacks {missing}")
    if rec["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"record {path} has schema {rec['schema_version']}, expected {SCHEMA_VERSION}")
    if rec["status"] not in STATUSES:
        raise ValueError(f"record {path} has unknown status {rec['status']!r}")
    return rec


def load_records(run_dir: Path) -> list[dict[str, Any]]:
    """All valid records; a corrupt one is reported (warning) and skipped, so the cell
    counts as missing and is recomputed on the next run."""
    out = []
    for path in sorted((Path(run_dir) / "records").glob("*.json")):
        try:
            out.append(read_record(path))
        except ValueError as e:
            warnings.warn(str(e), stacklevel=2)
    return out


def measurement(metric: str, value: float, *, k: int | None = None, unseen: bool | None = None,
                std: float = math.nan, n: int = 0, status: str = "ok", reason: str = "",
                samples: list[float] | None = None) -> dict[str, Any]:
    return {"metric": metric, "k": k, "unseen": unseen, "value": value, "std": std, "n": n,
            "status": status, "reason": reason, "samples": samples}


def rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``results.csv`` rows of one record (see the module docstring)."""
    base = {"task": rec["task"], "method": rec["method"], "seed": rec["seed"], "size": rec.get("size", ""),
            N_TRAIN: rec.get(N_TRAIN)}
    if rec["status"] != "ok":
        reason = rec.get("error") or rec.get("reason") or ""
        return [{**base, "k": None, "unseen": None, "metric": "status", "value": math.nan, "std": math.nan,
                 "n": 0, "status": rec["status"], "reason": reason.strip().splitlines()[-1] if reason else ""}]
    return [{**base, **{c: m.get(c) for c in CSV_COLUMNS if c in m}} for m in rec["measurements"]]


# ``results.csv``: one row per measurement, KEY unique. ``k`` is empty for cell-level
# costs; a cell that did not finish (or does not apply) contributes one row with
# ``metric == STATUS_METRIC``.
TABLE_REQUIRED = ("task", "method", "seed", "k", "metric", "value", "status")
OPTIONAL_TEXT = ("size", "reason")
STATUS_METRIC = "status"  # metric name of the one row a not-ok cell contributes
KEY = ("task", "method", "seed", "metric", "k")  # one measurement per key
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


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


def read_results(path: Path | str) -> pd.DataFrame:
    """Parse a ``results.csv`` (or a run directory's) into typed columns: ``seed`` int,
    ``k`` Int64 and ``unseen`` boolean (both nullable), ``value``/``std``/``n`` float.
    Strict about structure (missing columns and duplicate measurements raise
    ``ValueError``, naming the file), lenient about spelling (``True``, ``true``, ``1``
    are all a true ``unseen``); ``n_train`` (Int64) only when the file has that column
    (a run with ``--n-train``). Use this rather than a bare ``pd.read_csv``, whose
    default would read the status ``n/a`` as a missing value."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.exists():
        raise FileNotFoundError(f"no results file at {path}")
    # keep_default_na=False: pandas would otherwise read the status "n/a" (and a task or
    # method literally named "NA"/"null") as a missing value.
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in TABLE_REQUIRED if c not in raw.columns]
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
    key = list(KEY)
    if N_TRAIN in raw.columns:  # a run with --n-train: one measurement per key and size
        df[N_TRAIN] = _numeric(raw[N_TRAIN], N_TRAIN, path).astype("Int64")
        key.insert(3, N_TRAIN)
    dup = df.duplicated(subset=key, keep=False)
    if dup.any():
        shown = df.loc[dup, key].head(4).to_dict("records")
        raise ValueError(f"{path}: {int(dup.sum())} duplicate measurements, e.g. {shown}")
    return df


def write_results_csv(run_dir: Path) -> Path:
    """Rebuild ``<run dir>/results.csv`` from every record (atomically)."""
    table = [r for rec in load_records(run_dir) for r in rows(rec)]
    sized = any(r[N_TRAIN] is not None for r in table)
    columns = [*CSV_COLUMNS[:3], N_TRAIN, *CSV_COLUMNS[3:]] if sized else CSV_COLUMNS
    df = pd.DataFrame(table, columns=columns)
    df["k"] = df["k"].astype("Int64")
    if sized:
        df[N_TRAIN] = df[N_TRAIN].astype("Int64")
    path = Path(run_dir) / "results.csv"
    tmp = path.with_name(f".results.csv.{os.getpid()}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path
