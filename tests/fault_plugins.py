"""Methods that provoke faults of the process around a cell, loaded by the fault tests as
external ``module:Class`` specs (misbehaving *methods* live in tests/plugins.py)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import torch

from tests.plugins import MeanBased, Unchanged


class HugeRecord(MeanBased):
    """A correct method whose record is large (its diagnostics hold ``n`` numbers), so
    writing it takes long enough for a test to kill the process in the middle."""

    name = "huge_record"

    n: int = 1_500_000

    def alter(self, p):
        return p

    def diagnostics(self) -> dict:
        return {"blob": np.linspace(0.0, 1.0, self.n).tolist()}


class Hang(Unchanged):
    """Blocks for ``seconds`` and never checks a deadline (a solver stuck in a loop)."""

    name = "hang"

    seconds: float = 90.0

    def fit(self, train, spec, budget, ctx):
        time.sleep(self.seconds)
        return MeanBased.fit(self, train, spec, budget, ctx)


class NumpyOOM(Unchanged):
    """Asks numpy for 8 PB: more than any address space, so it fails even with overcommit."""

    name = "numpy_oom"

    def fit(self, train, spec, budget, ctx):
        np.ones(10**15)
        return MeanBased.fit(self, train, spec, budget, ctx)


class TorchOOM(Unchanged):
    """The same through torch, which raises RuntimeError ("can't allocate memory")."""

    name = "torch_oom"

    def fit(self, train, spec, budget, ctx):
        torch.ones(10**15)
        return MeanBased.fit(self, train, spec, budget, ctx)


class SelfKill(Unchanged):
    """Its worker process dies by SIGKILL, as when the kernel's OOM killer picks it."""

    name = "self_kill"

    def fit(self, train, spec, budget, ctx):
        os.kill(os.getpid(), signal.SIGKILL)


class NestedRun(Unchanged):
    """Starts a second ``bench run`` into ``out`` from inside a running cell and keeps its
    exit code: the outer run must still hold the run directory then."""

    name = "nested_run"

    out: str = ""

    def fit(self, train, spec, budget, ctx):
        from bench.cli import main

        self.nested_rc = main(["run", "--tasks", "darcy", "--methods", "mean", "--size", "smoke", "--out", self.out,
                               "--quiet", "--no-report"])
        return MeanBased.fit(self, train, spec, budget, ctx)

    def diagnostics(self) -> dict:
        return {"nested_rc": self.nested_rc}
