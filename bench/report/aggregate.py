"""Aggregate per-seed measurements into one `Entry` per (task, method, metric, k).

A seed contributes to an entry only when its cell finished (``ok``) and its row holds a
finite value with status ``ok``; every other seed is *counted* (``issues``), never
silently dropped, so a table can print "0.031 ± 0.002 (1/3 failed)". The spread over
seeds is the sample standard deviation (ddof=1). Given the records' per-sample values
(`Artifacts`), an entry also carries a 95% bootstrap CI over test samples (`bootstrap`),
computed from exactly the seeds that contributed to its mean.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.artifacts import Artifacts
from bench.report.bootstrap import ci_for
from bench.report.load import STATUS_METRIC, Run

OK = "ok"
NA = "n/a"
MISSING = "missing"  # no row recorded
NAN = "nan"  # recorded as ok but not a finite number
# Order in which mixed seed states are listed ("failed, timeout").
SEVERITY = ("failed", "diverged", "timeout", "truncated", NA, NAN, MISSING)


_SEP = ", "  # not "/": that is part of "n/a"


def join_states(states: list[str]) -> str:
    """One label for several seed states, most severe first: ``failed, timeout``."""
    rank = {s: i for i, s in enumerate(SEVERITY)}
    return _SEP.join(sorted(set(states), key=lambda s: (rank.get(s, -1), s)))


def split_states(label: str) -> list[str]:
    return label.split(_SEP)


@dataclass(frozen=True)
class Entry:
    """Seed aggregate of one measurement.

    ``state`` is ``ok`` when at least one seed contributed (then ``mean``/``std`` hold),
    otherwise the label of what happened to every seed (``failed``, ``n/a``, ...).
    ``issues`` counts the seeds that did not contribute, by state.
    """

    state: str
    n_seeds: int
    mean: float = math.nan
    std: float = math.nan
    values: tuple[float, ...] = ()  # per-seed values, kept for ranks and ratios
    issues: tuple[tuple[str, int], ...] = ()
    seeds: tuple[int, ...] = ()  # the seeds behind ``values``, in the same order
    ci: tuple[float, float] | None = None  # bootstrap CI over samples, when recorded

    @property
    def n_ok(self) -> int:
        return len(self.values)

    @property
    def ok(self) -> bool:
        return self.state == OK


@dataclass(frozen=True)
class CellStatus:
    seed: int
    status: str
    reason: str


class Summary:
    """Index of a run's measurements, queried by the table and figure builders."""

    def __init__(self, run: Run, artifacts: Artifacts | None = None) -> None:
        self.run = run
        self.artifacts = artifacts if artifacts is not None else Artifacts()
        self._entries: dict[tuple[str, str, str, int | None], Entry] = {}
        df = run.results
        self.tasks = run.tasks
        self.methods = run.methods
        self._cells = self._cell_table(df)
        self._rows: dict[tuple[str, str, str, int | None], dict[int, tuple[str, float, str]]] = {}
        self._unseen: dict[tuple[str, int], bool] = {}
        meas = df[df["metric"] != STATUS_METRIC]
        for rec in meas.itertuples(index=False):
            k = None if pd.isna(rec.k) else int(rec.k)
            self._rows.setdefault((rec.task, rec.method, rec.metric, k), {})[rec.seed] = (
                rec.status, float(rec.value), str(rec.reason),
            )
            if k is not None and not pd.isna(rec.unseen):
                key = (rec.task, k)
                self._unseen[key] = self._unseen.get(key, False) or bool(rec.unseen)

    def _cell_table(self, df: pd.DataFrame) -> dict[tuple[str, str], list[CellStatus]]:
        """Status of every expected (task, method, seed); unrecorded cells are ``missing``."""
        status_rows = {
            (r.task, r.method, r.seed): (r.status, str(r.reason))
            for r in df[df["metric"] == STATUS_METRIC].itertuples(index=False)
        }
        recorded = set(zip(df["task"], df["method"], df["seed"]))
        seeds = self.run.seeds
        out: dict[tuple[str, str], list[CellStatus]] = {}
        for task in self.tasks:
            for method in self.methods:
                cells = []
                for seed in seeds:
                    if (task, method, seed) in status_rows:
                        cells.append(CellStatus(seed, *status_rows[(task, method, seed)]))
                    elif (task, method, seed) in recorded:
                        cells.append(CellStatus(seed, OK, ""))
                    else:
                        cells.append(CellStatus(seed, MISSING, "no record in results.csv"))
                out[(task, method)] = cells
        return out

    # ---- cells -------------------------------------------------------------------
    def cells(self, task: str, method: str) -> list[CellStatus]:
        return self._cells[(task, method)]

    def row_status(self, task: str, method: str) -> str:
        """``ok`` if any seed finished, else the joined status of all seeds."""
        states = [c.status for c in self.cells(task, method)]
        return OK if OK in states else join_states(states)

    # ---- measurements ------------------------------------------------------------
    def ks(self, task: str, metric: str) -> list[int]:
        """Factors at which ``metric`` was recorded for ``task`` (any method, any state)."""
        return sorted({k for (t, _, m, k) in self._rows if t == task and m == metric and k is not None})

    def metrics(self, task: str) -> list[str]:
        """Metric names recorded for ``task``, in order of first appearance."""
        return list(dict.fromkeys(m for (t, _, m, _k) in self._rows if t == task))

    def has_finite(self, task: str, metric: str, k: int | None = None) -> bool:
        return any(
            any(s == OK and math.isfinite(v) for s, v, _ in seeds.values())
            for (t, _, m, kk), seeds in self._rows.items()
            if t == task and m == metric and (k is None or kk == k)
        )

    def smallest_k(self, task: str, metric: str) -> int | None:
        """Smallest k with a finite value (else smallest recorded; None for costs)."""
        ks = self.ks(task, metric)
        finite = [k for k in ks if self.has_finite(task, metric, k)]
        return (finite or ks or [None])[0]

    def is_unseen(self, task: str, k: int | None) -> bool:
        """From the rows' ``unseen`` flag; falls back to run.json's ``k_train``."""
        if k is None:
            return False
        if (task, k) in self._unseen:
            return self._unseen[(task, k)]
        k_train = self.run.k_train
        return k_train is not None and k not in k_train

    def entry(self, task: str, method: str, metric: str, k: int | None) -> Entry:
        """Seed aggregate of one measurement (memoised: bootstrap CIs are not free)."""
        key = (task, method, metric, k)
        if key not in self._entries:
            self._entries[key] = self._entry(*key)
        return self._entries[key]

    def _ci(self, task: str, method: str, metric: str, k: int | None, seeds: list[int]) -> tuple[float, float] | None:
        """CI from the contributing seeds' samples; None unless every one has them."""
        groups = [self.artifacts.samples(task, method, s, metric, k) for s in seeds]
        if not groups or any(g is None for g in groups):
            return None
        return ci_for(f"{task}|{method}|{metric}|{k}", [g for g in groups if g is not None])

    def _entry(self, task: str, method: str, metric: str, k: int | None) -> Entry:
        cells = self.cells(task, method)
        rows = self._rows.get((task, method, metric, k), {})
        cell_states: list[str] = []  # seeds whose cell did not finish
        row_states: list[str] = []  # finished seeds without a usable value
        values: list[float] = []
        seeds: list[int] = []
        for cell in cells:
            if cell.status != OK:
                cell_states.append(cell.status)
                continue
            status, value, _ = rows.get(cell.seed, (MISSING, math.nan, ""))
            if status == OK and math.isfinite(value):
                values.append(value)
                seeds.append(cell.seed)
            else:
                row_states.append(NAN if status == OK else status)
        rank = {s: i for i, s in enumerate(SEVERITY)}
        issues = tuple(sorted(Counter(cell_states + row_states).items(), key=lambda kv: rank.get(kv[0], -1)))
        if not values:
            # What the finished seeds say (n/a, NaN) is the cell's content; a failure of
            # another seed stays in `issues` and the failure notes.
            return Entry(join_states(row_states or cell_states), len(cells), issues=issues)
        arr = np.asarray(values)
        std = float(arr.std(ddof=1)) if len(arr) > 1 else math.nan
        ci = self._ci(task, method, metric, k, seeds)
        return Entry(OK, len(cells), float(arr.mean()), std, tuple(values), issues, tuple(seeds), ci)

    def reasons(self, task: str, method: str, metric: str, k: int | None) -> list[str]:
        """Distinct reasons of the seeds whose row is not ok (cells that finished)."""
        ok_seeds = {c.seed for c in self.cells(task, method) if c.status == OK}
        rows = self._rows.get((task, method, metric, k), {})
        got = [r for seed, (s, _, r) in rows.items() if seed in ok_seeds and s != OK and r]
        return list(dict.fromkeys(got))

    def to_frame(self) -> pd.DataFrame:
        """Tidy table of every entry (one row per task, method, metric, k)."""
        recs = []
        for (task, method, metric, k) in self._rows:
            e = self.entry(task, method, metric, k)
            recs.append({
                "task": task, "method": method, "metric": metric, "k": k,
                "unseen": self.is_unseen(task, k) if k is not None else None,
                "state": e.state, "mean": e.mean, "std": e.std,
                "ci_lo": e.ci[0] if e.ci else math.nan, "ci_hi": e.ci[1] if e.ci else math.nan,
                "n_ok": e.n_ok,
                "n_seeds": e.n_seeds,
                "issues": ", ".join(f"{n}/{e.n_seeds} {s}" for s, n in e.issues),
            })
        frame = pd.DataFrame.from_records(recs)
        if not frame.empty:
            frame["k"] = frame["k"].astype("Int64")
        return frame
