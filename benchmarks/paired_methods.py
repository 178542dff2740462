"""Paired comparison of two methods of one run on the same test samples.

    python benchmarks/paired_methods.py RUN_DIR TASK__METHOD_A__seedS TASK__METHOD_B__seedS [--metric rel_l2]

Reads the per-sample values each record stores (``measurements[].samples``) and prints,
per k, both means, the mean paired difference A - B with its standard error, and the share
of test samples on which A is better (lower). Two methods scored on the same test set are
compared far more sharply this way than by their means and spreads (issue #18: "clearly
beats persistence"). Written by hand: a few lines of NumPy over the records.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def samples(run: Path, cell: str, metric: str) -> dict[int, np.ndarray]:
    path = run / "records" / f"{cell}.json"
    if not path.exists():
        valid = sorted(p.stem for p in (run / "records").glob("*.json"))
        raise SystemExit(f"no record {path}; valid cells: {', '.join(valid)}")
    record = json.loads(path.read_text())
    return {row["k"]: np.asarray(row["samples"], dtype=float) for row in record["measurements"]
            if row["metric"] == metric and row.get("samples")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("a", help="record name of method A, e.g. turbulence__coarse_fv__seed0")
    p.add_argument("b", help="record name of method B")
    p.add_argument("--metric", default="rel_l2", help="a per-sample metric (default rel_l2)")
    args = p.parse_args()
    a, b = samples(args.run, args.a, args.metric), samples(args.run, args.b, args.metric)
    if not set(a) & set(b):
        raise SystemExit(f"no k with per-sample values of {args.metric!r} in both records (a per-sample metric "
                         "such as rel_l2 or fluct_rel_l2, scored on both)")
    for k in sorted(set(a) & set(b)):
        if a[k].shape != b[k].shape:
            raise SystemExit(f"k={k}: {args.a} and {args.b} were scored on different test sets")
        d = a[k] - b[k]
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        print(f"k={k}: A {a[k].mean():.4f}  B {b[k].mean():.4f}  A-B {d.mean():+.4f} ± {se:.4f} (SE)  "
              f"A lower on {100 * np.mean(d < 0):.0f}% of {len(d)} samples")


if __name__ == "__main__":
    main()
