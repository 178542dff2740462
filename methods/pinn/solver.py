"""The per-instance protocol shared by `pinn` and `bpinn`: no training, a solve per test
instance from the task's continuous PDE (`nskernel.pointwise`).

``fit`` learns nothing from the training set; ``predict`` solves each instance from its
fine input (coefficients at the collocation points; for time-dependent tasks the state
at t, as the task's `PointwisePDE` prescribes), reads the fields at the fine cell
centres and restricts with ``R_k``. One solve serves every k (cached by input content);
the timing harness clears the cache inside every timed call (``clear_cache``), so
``infer_s`` is the whole per-instance solve, timed once (its cost does not depend on k).
"""

from __future__ import annotations

import abc
import dataclasses
import time
import zlib
from typing import Any, ClassVar

import numpy as np
import torch

from nskernel import SIZES, Budget, Context, Dataset, Method, PointwisePDE, Prediction, TaskSpec, TimingHints
from nskernel.context import DTYPES
from nskernel.errors import Diverged
from nskernel.grid import restrict


def budget_size(budget: Budget) -> str:
    """The benchmark size this budget belongs to (``small`` for a custom one)."""
    return budget.size if budget.size in SIZES else "small"


def instance_seed(seed: int, sample: np.ndarray) -> int:
    """A seed that depends on the run seed and the instance's content only, so every
    predict call (every k, the timed calls) solves an instance identically."""
    digest = zlib.crc32(np.ascontiguousarray(sample).tobytes())
    return int(np.random.SeedSequence([seed, digest]).generate_state(1)[0])


class PointwiseSolver(Method):
    """Per-instance solvers on a `PointwisePDE`: no training, a solve per test instance.

    Subclasses implement ``solve(sample, seed) -> (fields (S, C, H, W), log)`` with one
    field (deterministic) or posterior samples (probabilistic), and give ``SIZES``, the
    per-size defaults of the budget hyperparameters (those left at ``None``).

    The shared hyperparameters: ``instances`` (test instances scored),
    ``n_collocation`` (collocation points, also the most points per soft condition),
    ``time_slices`` (collocation times per spatial stratum, time-dependent tasks),
    ``max_solve_s`` (wall-time cap per instance); the tanh MLP's ``width``, ``depth``,
    ``modes`` (periodic embedding harmonics) and ``lr``; ``threads``: intra-op threads of
    a solve; ``force``: run where the task marks its pointwise PDE infeasible.

    ``precision``: the solve's floating-point type, whatever the run's ``--dtype``.
    float64 by default: L-BFGS and HMC on these small per-instance problems amplify
    float32 rounding into different results on different CPU instruction sets (measured
    with ``ATEN_CPU_CAPABILITY=default`` against AVX-512: smoke `pinn` moved by 4 % and
    `bpinn` by up to 100 % in float32; `pinn` not at all and `bpinn` on Darcy by < 1 % in
    float64), and HMC's accept test compares Hamiltonians of order 1e3-1e5, where float32
    rounding is not small next to the energy errors the step size is tuned to
    (docs/pinn.md)."""

    uses_training_data = False  # each instance is solved from its PDE: no data cost to amortise

    # A solve takes seconds to minutes: time one instance, once (bench.costs). One
    # solve serves every k (R_k of the fine field), so its cost does not depend on k.
    timing = TimingHints(batch=1, repeats=1, warmup=0, attempts=1, k_independent=True)
    SIZES: ClassVar[dict[str, dict[str, Any]]] = {}

    instances: int | None = None
    n_collocation: int | None = None
    time_slices: int | None = None
    max_solve_s: float | None = None
    width: int = 32
    depth: int = 3
    modes: int = 2
    lr: float = 1e-3
    threads: int = 1
    force: bool = False
    precision: str = "float64"

    def check_params(self) -> None:
        if self.instances is not None and self.instances < 1:
            raise ValueError(f"instances must be >= 1, got {self.instances}")
        if self.precision not in DTYPES:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(DTYPES)}")

    def not_applicable(self, spec: TaskSpec) -> str | None:
        pde = spec.pointwise
        if pde is None:
            return f"task {spec.name} publishes no continuous (pointwise) PDE"
        if not isinstance(pde, PointwisePDE):
            return f"task {spec.name}: pointwise is a {type(pde).__name__}, not a PointwisePDE"
        if pde.infeasible and not self.force:
            return pde.infeasible
        return None

    def max_eval_samples(self) -> int | None:
        """Test instances scored: the ``instances`` setting in force (it follows the size,
        known once `fit` has run; the harness asks after `fit`)."""
        return int(self._settings["instances"])

    def settings(self, size: str) -> dict[str, Any]:
        """The budget hyperparameters in force: constructor values, else the size's."""
        table = self.SIZES[size if size in self.SIZES else "small"]
        return {key: (default if getattr(self, key) is None else getattr(self, key)) for key, default in table.items()}

    def fit(self, train: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> PointwiseSolver:
        # Nothing is learned from `train`: each test instance is solved from its PDE.
        self._pde: PointwisePDE = spec.pointwise
        self._ctx = dataclasses.replace(ctx, dtype=self.precision)
        self._size = budget_size(budget)
        self._settings = self.settings(self._size)
        self._cache: dict[int, np.ndarray] = {}
        self._log: list[dict[str, Any]] = []
        self.warm_up()
        return self

    def warm_up(self) -> None:
        """Pay once-per-process import costs here, not in the first solve (whose time cap
        they would eat): torch.optim's first optimiser imports torch._dynamo (seconds)."""
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])

    def clear_cache(self) -> None:
        """Forget cached solves (the timing harness calls this inside each timed call)."""
        self._cache.clear()

    @abc.abstractmethod
    def solve(self, sample: np.ndarray, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        """The fine fields ``(S, C, H, W)`` of one instance and a log of the solve."""

    def _fields(self, sample: np.ndarray) -> np.ndarray:
        """The instance's fine fields ``(S, C, H, W)``, solved once per cache lifetime."""
        seed = instance_seed(self._ctx.seed, sample)
        if seed not in self._cache:
            self._ctx.check_deadline(f"{self.name} solve")
            t0 = time.perf_counter()
            threads = torch.get_num_threads()
            # Small autograd graphs: one intra-op thread is faster, and much faster on a
            # loaded machine (measured, docs/pinn.md); never more than the cell allows.
            torch.set_num_threads(max(1, min(self.threads, self._ctx.threads)))
            try:
                fields, log = self.solve(np.asarray(sample, dtype=np.float64), seed)
            finally:
                torch.set_num_threads(threads)
            if not np.isfinite(fields).all():
                raise Diverged(f"{self.name}: the solve of an instance produced non-finite values")
            log["solve_s"] = round(time.perf_counter() - t0, 3)
            self._log.append(log)
            self._cache[seed] = fields.astype(np.float32)
        return self._cache[seed]

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        # (N, S, C, h, w): R_k of every posterior draw of every instance; restricting each
        # draw makes the law of the block average exact (no correlation assumption)
        fields = np.stack([restrict(self._fields(sample), k) for sample in inputs]).astype(np.float64)
        mean = fields.mean(axis=1)
        if not self.probabilistic:
            return Prediction(mean=mean)
        return Prediction(mean=mean, var=fields.var(axis=1),
                          samples=np.moveaxis(fields, 1, 0) if fields.shape[1] >= 2 else None)

    def truncation(self) -> str | None:
        capped = sum(1 for log in self._log if log.get("time_capped"))
        if not capped:
            return None
        return (f"{capped} of {len(self._log)} per-instance solves stopped by the wall-clock safety cap "
                f"(max_solve_s={self._settings['max_solve_s']:g})")

    def n_params(self) -> int | None:
        """Parameters of the network trained (or sampled) anew for every instance."""
        if not hasattr(self, "_pde"):
            return None
        sizes = [self._pde.embedded_dim(self.modes)] + [self.width] * self.depth + [len(self._pde.outputs)]
        return sum((i + 1) * o for i, o in zip(sizes[:-1], sizes[1:]))

    def diagnostics(self) -> dict[str, Any]:
        return {"pointwise": {"size": self._size, **self._settings, "solves": self._log[:32]}}
