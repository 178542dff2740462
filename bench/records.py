"""Per-cell result records and the long ``results.csv`` built from them.

A record is one JSON file per cell (task, method with parameters, seed) under
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

import pandas as pd

from bench import SCHEMA_VERSION

STATUSES = ("ok", "failed", "diverged", "timeout", "n/a")
CSV_COLUMNS = ["task", "method", "seed", "size", "k", "unseen", "metric", "value", "std", "n", "status", "reason"]
REQUIRED = ("schema_version", "task", "method", "seed", "status", "config_hash", "measurements")


def cell_id(task: str, method: str, seed: int) -> str:
    """A filesystem-safe, unique, readable file stem for a cell."""
    safe = lambda s: re.sub(r"[^A-Za-z0-9_.=-]+", "_", s)  # noqa: E731
    return f"{safe(task)}__{safe(method)}__seed{seed}"


def record_path(run_dir: Path, task: str, method: str, seed: int) -> Path:
    return Path(run_dir) / "records" / f"{cell_id(task, method, seed)}.json"


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
    base = {"task": rec["task"], "method": rec["method"], "seed": rec["seed"], "size": rec.get("size", "")}
    if rec["status"] != "ok":
        reason = rec.get("error") or rec.get("reason") or ""
        return [{**base, "k": None, "unseen": None, "metric": "status", "value": math.nan, "std": math.nan,
                 "n": 0, "status": rec["status"], "reason": reason.strip().splitlines()[-1] if reason else ""}]
    return [{**base, **{c: m.get(c) for c in CSV_COLUMNS if c in m}} for m in rec["measurements"]]


def read_results(path: Path) -> pd.DataFrame:
    """Load a ``results.csv``. Use this (or ``keep_default_na=False``): pandas' default
    would read the status ``n/a`` as a missing value."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.exists():
        raise FileNotFoundError(f"no results file at {path}")
    df = pd.read_csv(path, keep_default_na=False, na_values={"value": [""], "std": [""], "k": [""], "n": [""]})
    df["k"] = df["k"].astype("Int64")
    df["unseen"] = df["unseen"].map({"True": True, "False": False, True: True, False: False})
    return df


def write_results_csv(run_dir: Path) -> Path:
    """Rebuild ``<run dir>/results.csv`` from every record (atomically)."""
    table = [r for rec in load_records(run_dir) for r in rows(rec)]
    df = pd.DataFrame(table, columns=CSV_COLUMNS)
    df["k"] = df["k"].astype("Int64")
    path = Path(run_dir) / "results.csv"
    tmp = path.with_name(f".results.csv.{os.getpid()}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path
