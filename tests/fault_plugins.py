"""Methods that provoke faults of the process around a cell, loaded by the fault tests as
external ``module:Class`` specs (misbehaving *methods* live in tests/plugins.py)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import torch

from methods.mean import MeanField


class HugeRecord(MeanField):
    """A correct method whose record is large (its diagnostics hold ``n`` numbers), so
    writing it takes long enough for a test to kill the process in the middle."""

    name = "huge_record"

    def __init__(self, n: int = 1_500_000) -> None:
        self.n = n

    def diagnostics(self) -> dict:
        return {"blob": np.linspace(0.0, 1.0, self.n).tolist()}


class Hang(MeanField):
    """Blocks for ``seconds`` and never checks a deadline (a solver stuck in a loop)."""

    name = "hang"

    def __init__(self, seconds: float = 90.0) -> None:
        self.seconds = seconds

    def fit(self, train, spec, budget, ctx):
        time.sleep(self.seconds)
        return super().fit(train, spec, budget, ctx)


class NumpyOOM(MeanField):
    """Asks numpy for 8 PB: more than any address space, so it fails even with overcommit."""

    name = "numpy_oom"

    def fit(self, train, spec, budget, ctx):
        np.ones(10**15)
        return super().fit(train, spec, budget, ctx)


class TorchOOM(MeanField):
    """The same through torch, which raises RuntimeError ("can't allocate memory")."""

    name = "torch_oom"

    def fit(self, train, spec, budget, ctx):
        torch.ones(10**15)
        return super().fit(train, spec, budget, ctx)


class SelfKill(MeanField):
    """Its worker process dies by SIGKILL, as when the kernel's OOM killer picks it."""

    name = "self_kill"

    def fit(self, train, spec, budget, ctx):
        os.kill(os.getpid(), signal.SIGKILL)


class NestedRun(MeanField):
    """Starts a second ``bench run`` into ``out`` from inside a running cell and keeps its
    exit code: the outer run must still hold the run directory then."""

    name = "nested_run"

    def __init__(self, out: str = "") -> None:
        self.out = out

    def fit(self, train, spec, budget, ctx):
        from bench.cli import main

        self.nested_rc = main(["run", "--tasks", "darcy", "--methods", "mean", "--size", "smoke", "--out", self.out,
                               "--quiet", "--no-report"])
        return super().fit(train, spec, budget, ctx)

    def diagnostics(self) -> dict:
        return {"nested_rc": self.nested_rc}
