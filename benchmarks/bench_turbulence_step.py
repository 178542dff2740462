"""Cost of one fine time step of the turbulence solver against its FFT floor.

The floor is (real 2D FFTs per RK4 step = 16) x (time of one real FFT of that size,
measured here with the same library, plan flags, batch layout and threads). The step's
other work (products, right-hand side, RK4 update) should add at most ~50% at 256^2.

    python benchmarks/bench_turbulence_step.py [--sizes 128 256] [--streams 1 2]

``--streams s`` runs s independent solver streams in s threads, the way the task
parallelises (each stream single-threaded FFTW); times are per field and step. Timings
are the best of ``--repeats`` rounds (robust to other load); the ratio is printed, no
wall time is asserted.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tasks.turbulence import kernels as tk
from tasks.turbulence.solver import FFT_PER_STEP, VorticitySolver, kolmogorov_forcing

STEPS = 10  # steps per timed call, as `advance` runs them (buffers reused across steps)


def best_time(fn: Callable[[], object], repeats: int, min_s: float = 0.3) -> float:
    """Best over ``repeats`` rounds of the mean time per call within a round."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            el = time.perf_counter() - t0
            if el >= min_s:
                break
        best = min(best, el / calls)
    return best


def concurrent(fns: list[Callable[[], object]]) -> Callable[[], None]:
    """Run one call of each ``fn`` concurrently (one thread each)."""
    if len(fns) == 1:
        return fns[0]
    pool = ThreadPoolExecutor(max_workers=len(fns))

    def run() -> None:
        for f in [pool.submit(fn) for fn in fns]:
            f.result()

    return run


def bench(n: int, streams: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    solvers = {
        "fused": lambda: VorticitySolver(n, 1e-3, 0.1, kolmogorov_forcing(n, 1.0, 4), backend="fftw", fused=True),
        "fftw-expr": lambda: VorticitySolver(n, 1e-3, 0.1, kolmogorov_forcing(n, 1.0, 4), backend="fftw", fused=False),
        "torch": lambda: VorticitySolver(n, 1e-3, 0.1, kolmogorov_forcing(n, 1.0, 4), backend="torch"),
    }
    # FFT floor: the step transforms u, v (and the two products) as one batch of 2 fields
    s0 = solvers["fused"]()
    ffts = []
    for _ in range(streams):
        r2c = s0.fft.plan("r2c", (2, 1), tag=f"bench{len(ffts)}")
        c2r = s0.fft.plan("c2r", (2, 1), tag=f"bench{len(ffts)}")
        r2c.input_array[...] = rng.standard_normal(r2c.input_array.shape)
        ffts.append((r2c, c2r))
    t_fwd = best_time(concurrent([f[0].execute for f in ffts]), repeats) / 2
    t_bwd = best_time(concurrent([f[1].execute for f in ffts]), repeats) / 2
    out["fft_ms"] = 1e3 * (t_fwd + t_bwd) / 2
    out["floor_ms"] = FFT_PER_STEP * out["fft_ms"]
    for name, make in solvers.items():
        if name == "fused" and not tk.available():
            continue
        if name == "torch":
            import torch

            torch.set_num_threads(streams)  # torch parallelises inside ops instead
            s = make()
            w = s.to_spectral(rng.standard_normal((streams, n, n)))
            out["torch_ms"] = 1e3 * best_time(lambda s=s, w=w: s.steps(w, 1e-3, STEPS), repeats) / streams / STEPS
            continue
        ss = [make() for _ in range(streams)]
        ws = [s.to_spectral(rng.standard_normal((1, n, n))) for s in ss]
        calls = [lambda s=s, w=w: s.steps(w, 1e-3, STEPS) for s, w in zip(ss, ws)]
        out[f"{name}_ms"] = 1e3 * best_time(concurrent(calls), repeats) / STEPS
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; fused kernels: {tk.available()}")
    print(f"{'n':>5} {'streams':>7} {'fft ms':>8} {'floor ms':>9} {'step ms':>8} {'ratio':>6}   others (ms, ratio)")
    for n in a.sizes:
        for s in a.streams:
            r = bench(n, s, a.repeats)
            main_key = "fused_ms" if "fused_ms" in r else "fftw-expr_ms"
            others = ", ".join(f"{k[:-3]} {v:.3f} ({v / r['floor_ms']:.2f}x)" for k, v in r.items()
                               if k.endswith("_ms") and k not in ("fft_ms", "floor_ms", main_key))
            print(f"{n:>5} {s:>7} {r['fft_ms']:>8.4f} {r['floor_ms']:>9.3f} {r[main_key]:>8.3f} "
                  f"{r[main_key] / r['floor_ms']:>5.2f}x   {others}")


if __name__ == "__main__":
    main()
