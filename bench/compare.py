"""Regression check of a new run against a baseline: ``python -m bench compare BASE NEW``.

Cells are matched by (task, method, k, metric). Each side is summarised over seeds
(mean, and the standard deviation across seeds). A change counts as a regression only
if it goes in the *worse* direction (the metric's ``direction``) by more than the tolerance
``max(atol, rtol * |base|)`` **and** by more than the seed spread
``z * sqrt(sd_base^2 + sd_new^2)``. A cell that was ok in the baseline and is failed /
diverged / timed out (or missing) in the new run is a regression too.

Default tolerances are each metric's own (`nskernel.Metric.tolerance`): tight for
accuracy, loose for timings (shared machines are noisy), none for machine-dependent
costs such as memory; override them per metric on the command line
(``--tol rel_l2=0.02`` or ``--tol speedup=0.5:0``) or from a JSON file
``{"metric": {"rtol": r, "atol": a}}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.catalog import metric_info
from bench.records import read_results
from nskernel import Tolerance
from nskernel.errors import UsageError
from nskernel.metric import base_name

KEYS = ["task", "method", "k", "metric"]


def tolerance_for(metric: str, overrides: dict[str, Tolerance]) -> Tolerance | None:
    """The tolerance of a column: an override, else the metric's own default (None: the
    metric is not compared unless a tolerance is given for it)."""
    for key in (metric, base_name(metric)):  # rollout_rel_l2@2, then rollout_rel_l2
        if key in overrides:
            return overrides[key]
    return metric_info(metric).tolerance


def parse_tolerances(items: list[str], file: Path | None = None) -> dict[str, Tolerance]:
    """``["rel_l2=0.02", "speedup=0.5:0.1"]`` (rtol[:atol]) plus an optional JSON file."""
    out: dict[str, Tolerance] = {}
    if file is not None:
        try:
            data = json.loads(Path(file).read_text())
            out.update({m: Tolerance(float(t.get("rtol", 0.0)), float(t.get("atol", 0.0))) for m, t in data.items()})
        except (OSError, ValueError, AttributeError) as e:
            raise UsageError(f"cannot read tolerance file {file}: {e}") from None
    for item in items:
        try:
            metric, value = item.split("=", 1)
            rtol, _, atol = value.partition(":")
            out[metric] = Tolerance(float(rtol), float(atol or 0.0))
        except ValueError:
            raise UsageError(f"bad tolerance {item!r}: expected metric=rtol[:atol], e.g. rel_l2=0.05") from None
    return out


def _load(path: Path) -> pd.DataFrame:
    try:
        return read_results(path)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None


def _summarise(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[(df.status == "ok") & (df.metric != "status")]
    g = ok.groupby(KEYS, dropna=False)["value"]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1).fillna(0.0), "seeds": g.count()})


def _cell_status(df: pd.DataFrame) -> dict[tuple[str, str], str]:
    """Status per (task, method) over seeds: a failure in any seed wins over ok."""
    cell = df[df.metric == "status"].groupby(["task", "method"])["status"].first().to_dict()
    out = {key: "ok" for key in df.groupby(["task", "method"]).groups}
    out.update(cell)
    return out


def compare(base_path: Path, new_path: Path, overrides: dict[str, Tolerance] | None = None,
            z: float = 2.0) -> pd.DataFrame:
    """The comparison table, one row per matched measurement, with a ``verdict`` column
    in {regressed, improved, same} (plus rows for cells that stopped working)."""
    overrides = overrides or {}
    base, new = _load(base_path), _load(new_path)
    missing_tasks = sorted(set(base.task) - set(new.task))
    if missing_tasks:
        raise UsageError(f"tasks {missing_tasks} are in {base_path} but not in {new_path}: the runs do not match")
    sb, sn = _summarise(base), _summarise(new)
    table = sb.add_suffix("_base").join(sn.add_suffix("_new"), how="inner").reset_index()
    verdicts, limits = [], []
    for row in table.itertuples(index=False):
        tol = tolerance_for(row.metric, overrides)
        if tol is None:
            verdicts.append("ignored")
            limits.append(np.nan)
            continue
        spread = z * float(np.hypot(row.sd_base, row.sd_new))
        limit = max(tol.atol, tol.rtol * abs(row.mean_base), spread)
        metric = metric_info(row.metric)
        delta = metric.score(row.mean_new) - metric.score(row.mean_base)
        verdicts.append("regressed" if delta > limit else "improved" if delta < -limit else "same")
        limits.append(limit)
    table["limit"], table["verdict"] = limits, verdicts
    # Cells that worked in the baseline but not any more (or vanished) are regressions.
    stb, stn = _cell_status(base), _cell_status(new)
    broken = []
    for key, status in stb.items():
        now = stn.get(key, "missing")
        if status == "ok" and now not in ("ok",):
            broken.append({"task": key[0], "method": key[1], "k": pd.NA, "metric": "status",
                           "mean_base": np.nan, "mean_new": np.nan, "verdict": "regressed", "note": f"ok -> {now}"})
    if broken:
        table = pd.concat([table, pd.DataFrame(broken)], ignore_index=True)
    return table


def format_table(table: pd.DataFrame, show_all: bool = False) -> str:
    shown = table if show_all else table[table.verdict.isin(["regressed", "improved"])]
    if shown.empty:
        return "no changes beyond tolerance"
    cols = [c for c in ["task", "method", "k", "metric", "mean_base", "mean_new", "limit", "verdict", "note"]
            if c in shown]
    return shown[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
