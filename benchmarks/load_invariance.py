"""Does the machine's load change the numbers? Runs the same `bench run` command twice,
once on an idle machine and once while busy processes keep every core loaded, and
compares the accuracy columns of the two results.csv (every metric but the costs) for
exact equality. Budgets count steps, so they must be identical; the costs (seconds,
speedups, memory) are expected to differ.

    python benchmarks/load_invariance.py --tasks darcy --methods fno,neuroscale,coarse_fv,mean --size small

Prints the number of compared values and the differences; exit 1 if any differ.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.catalog import metric_info
from bench.records import read_results

COSTS = {"cost"}  # metric groups whose values depend on the machine by nature


def _spin(stop: mp.synchronize.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF


def run(argv: list[str], out: Path, busy: int) -> float:
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    t0 = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "bench", "run", *argv, "--out", str(out), "--quiet", "--no-report"],
                       check=False)
    finally:
        stop.set()
        for p in spinners:
            p.join()
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="darcy")
    p.add_argument("--methods", default="fno,neuroscale,coarse_fv,mean")
    p.add_argument("--size", default="small")
    p.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy processes in the loaded run")
    a = p.parse_args()
    argv = ["--tasks", a.tasks, "--methods", a.methods, "--size", a.size]
    with tempfile.TemporaryDirectory() as tmp:
        idle_s = run(argv, Path(tmp) / "idle", 0)
        busy_s = run(argv, Path(tmp) / "busy", a.busy)
        idle, busy = read_results(Path(tmp) / "idle"), read_results(Path(tmp) / "busy")
    key = ["task", "method", "seed", "metric", "k"]
    both = idle.merge(busy, on=key, suffixes=("_idle", "_busy"), how="outer", indicator=True)
    accuracy = both[[metric_info(m).group not in COSTS if m != "status" else True for m in both.metric]]
    same = (accuracy.value_idle == accuracy.value_busy) | (accuracy.value_idle.isna() & accuracy.value_busy.isna())
    same &= (accuracy.status_idle == accuracy.status_busy) & (accuracy._merge == "both")
    print(f"idle run {idle_s:.0f} s, loaded run ({a.busy} busy processes) {busy_s:.0f} s")
    print(f"{len(accuracy)} accuracy values compared, {int((~same).sum())} differ")
    if (~same).any():
        print(accuracy.loc[~same, [*key, "value_idle", "value_busy", "status_idle", "status_busy"]].to_string())
    return 0 if same.all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
