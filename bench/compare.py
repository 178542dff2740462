"""Regression check of a new run against a baseline: ``python -m bench compare BASE NEW``.

Cells are matched by (task, method, k, metric), and by the training-set size of a
``--n-train`` run (a run without the option has none). Each side is summarised over seeds
(mean, and the standard deviation across seeds). A change counts as a regression only
if it goes in the *worse* direction (the metric's ``direction``) by more than the tolerance
``max(atol, rtol * |base|)`` **and** by more than the seed spread
``z * sqrt(sd_base^2 + sd_new^2)``. A cell that was ok in the baseline and is failed /
diverged / timed out (or missing) in the new run is a regression too.

Default tolerances are each metric's own (`nskernel.Metric.tolerance`): tight for
accuracy, loose for timings (shared machines are noisy), none for machine-dependent
costs such as memory; override them per metric on the command line
(``--tol rel_l2=0.02`` or ``--tol speedup=0.5:0``) or from a JSON file (see
`parse_tolerances`), which may also widen them per method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.catalog import include_tasks, metric_info
from bench.records import read_results
from bench.scaling import N_TRAIN
from nskernel import Tolerance
from nskernel.errors import UsageError
from nskernel.metric import base_name

KEYS = ["task", "method", N_TRAIN, "k", "metric"]
CELL = ["task", "method", N_TRAIN]


@dataclass(frozen=True)
class Tolerances:
    """Tolerance overrides: per metric column (``rel_l2``, or a base name such as
    ``rollout_rel_l2``), and per method (``by_method[method][metric or "*"]``).

    A method's entry only widens the tolerance the metric would have (the larger rtol
    and atol win): it is for methods whose numbers are known to move more than the
    metric's default between machines (docs/architecture.md, "Regression checks")."""

    by_metric: dict[str, Tolerance] = field(default_factory=dict)
    by_method: dict[str, dict[str, Tolerance]] = field(default_factory=dict)

    def for_(self, method: str, metric: str) -> Tolerance | None:
        """The tolerance of a (method, metric column) pair, or None: not compared."""
        tol = next((self.by_metric[k] for k in (metric, base_name(metric)) if k in self.by_metric),
                   metric_info(metric).tolerance)
        own = self.by_method.get(method, {})
        wide = next((own[k] for k in (metric, base_name(metric), "*") if k in own), None)
        if tol is None or wide is None:
            return tol
        return Tolerance(max(tol.rtol, wide.rtol), max(tol.atol, wide.atol))


def _tolerance(spec: object, where: str) -> Tolerance:
    if not isinstance(spec, dict) or set(spec) - {"rtol", "atol"}:
        raise ValueError(f"{where}: expected {{\"rtol\": r, \"atol\": a}}, got {spec!r}")
    return Tolerance(float(spec.get("rtol", 0.0)), float(spec.get("atol", 0.0)))


def parse_tolerances(items: list[str], file: Path | None = None) -> Tolerances:
    """``["rel_l2=0.02", "speedup=0.5:0.1"]`` (rtol[:atol]) plus an optional JSON file
    ``{"metric": {"rtol": r, "atol": a}, ..., "by_method": {"method": {"metric" or "*":
    {"rtol": r, "atol": a}}}}``; command-line items win over the file."""
    out = Tolerances()
    if file is not None:
        try:
            data = json.loads(Path(file).read_text())
            for name, spec in data.items():
                if name == "by_method":
                    for method, per in spec.items():
                        out.by_method[method] = {m: _tolerance(t, f"by_method.{method}.{m}") for m, t in per.items()}
                else:
                    out.by_metric[name] = _tolerance(spec, name)
        except (OSError, ValueError, AttributeError) as e:
            raise UsageError(f"cannot read tolerance file {file}: {e}") from None
    for item in items:
        try:
            metric, value = item.split("=", 1)
            rtol, _, atol = value.partition(":")
            out.by_metric[metric] = Tolerance(float(rtol), float(atol or 0.0))
        except ValueError:
            raise UsageError(f"bad tolerance {item!r}: expected metric=rtol[:atol], e.g. rel_l2=0.05") from None
    return out


def _load(path: Path) -> pd.DataFrame:
    try:
        df = read_results(path)
    except FileNotFoundError as e:
        raise UsageError(str(e)) from None
    include_tasks(df["task"].unique())  # an external module:Class task's own metrics
    if N_TRAIN not in df:
        df[N_TRAIN] = pd.Series(pd.NA, index=df.index, dtype="Int64")
    return df


def _summarise(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[(df.status == "ok") & (df.metric != "status")]
    g = ok.groupby(KEYS, dropna=False)["value"]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1).fillna(0.0), "seeds": g.count()})


def _cell_status(df: pd.DataFrame) -> dict[tuple[str, str, int | None], str]:
    """Status per (task, method, training-set size) over seeds: a failure in any seed
    wins over ok."""
    cell = df[df.metric == "status"].groupby(CELL, dropna=False)["status"].first().to_dict()
    out = {key: "ok" for key in df.groupby(CELL, dropna=False).groups}
    out.update(cell)
    return out


def compare(base_path: Path, new_path: Path, overrides: Tolerances | None = None,
            z: float = 2.0) -> pd.DataFrame:
    """The comparison table, one row per matched measurement, with a ``verdict`` column
    in {regressed, improved, same} (plus rows for cells that stopped working)."""
    overrides = overrides or Tolerances()
    base, new = _load(base_path), _load(new_path)
    missing_tasks = sorted(set(base.task) - set(new.task))
    if missing_tasks:
        raise UsageError(f"tasks {missing_tasks} are in {base_path} but not in {new_path}: the runs do not match")
    sb, sn = _summarise(base), _summarise(new)
    table = sb.add_suffix("_base").join(sn.add_suffix("_new"), how="inner").reset_index()
    verdicts, limits = [], []
    for row in table.itertuples(index=False):
        tol = overrides.for_(row.method, row.metric)
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
            broken.append({"task": key[0], "method": key[1], N_TRAIN: key[2], "k": pd.NA, "metric": "status",
                           "mean_base": np.nan, "mean_new": np.nan, "verdict": "regressed", "note": f"ok -> {now}"})
    if broken:
        table = pd.concat([table, pd.DataFrame(broken)], ignore_index=True)
    return table


def format_table(table: pd.DataFrame, show_all: bool = False) -> str:
    shown = table if show_all else table[table.verdict.isin(["regressed", "improved"])]
    if shown.empty:
        return "no changes beyond tolerance"
    cols = [c for c in ["task", "method", N_TRAIN, "k", "metric", "mean_base", "mean_new", "limit", "verdict",
                        "note"] if c in shown and (c != N_TRAIN or shown[c].notna().any())]
    return shown[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
