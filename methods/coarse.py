"""Classical coarse-grid solvers as methods: `coarse_fv`, `coarse_spectral`, `coarse_dns`
(the fine scheme, no subgrid model, on the k-coarse grid: Kochkov et al.'s "DNS at the
coarse resolution" baseline) and the reference row `dns_floor`.

Each task publishes its classical solvers in ``spec.coarse_solvers`` by family; these
methods only look the family up, pass their parameters through and never train. Their
parameters are the task's solver parameters (e.g. ``coarse_fv:mean=harmonic`` for Darcy),
validated against the defaults the task declares.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from nskernel import Budget, CoarseSolver, Context, Dataset, Method, Prediction, TaskSpec
from nskernel.errors import UsageError


class CoarseClassical(Method):
    """Abstract base of the classical coarse solvers; ``family`` selects the task's solver."""

    uses_training_data = False  # nothing is learned from data: no data cost to amortise
    open_params = True  # the parameters are the task's solver's (checked in `check_spec`)

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    @property
    @abc.abstractmethod
    def family(self) -> str:
        """The key of the task's solver in ``TaskSpec.coarse_solvers``."""

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    def _solver(self, spec: TaskSpec) -> CoarseSolver:
        return spec.coarse_solvers[self.family]

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if self.family not in spec.coarse_solvers:
            return f"task {spec.name} has no classical '{self.family}' coarse solver"
        return None

    def check_spec(self, spec: TaskSpec) -> None:
        if self.family not in spec.coarse_solvers:
            return  # not applicable: recorded n/a, whatever the parameters
        solver = self._solver(spec)
        unknown = sorted(set(self.params) - set(solver.params))
        if unknown:
            valid = ", ".join(sorted(solver.params)) or "none"
            raise UsageError(f"{self.name}: unknown parameter(s) {unknown} for task {spec.name}; valid: {valid}")
        for key, value in self.params.items():
            if key in solver.choices and value not in solver.choices[key]:
                valid = ", ".join(map(str, solver.choices[key]))
                raise UsageError(f"{self.name}: {key}={value} is not valid for task {spec.name}; valid: {valid}")

    def fit(self, train: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> CoarseClassical:
        self._impl = self._solver(spec)
        self._kwargs = {**self._impl.params, **self.params}
        return self

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        return Prediction(mean=np.asarray(self._impl.solve(inputs, k, **self._kwargs), dtype=np.float64))

    def advance(self, state: np.ndarray, k: int) -> Prediction:
        if self._impl.advance is None:
            return super().advance(state, k)
        return Prediction(mean=np.asarray(self._impl.advance(state, k, **self._kwargs), dtype=np.float64))


class CoarseFV(CoarseClassical):
    name = "coarse_fv"
    summary = "task's finite-volume/difference scheme on the k-coarse grid"
    family = "fv"  # type: ignore[assignment]


class CoarseSpectral(CoarseClassical):
    name = "coarse_spectral"
    summary = "task's pseudo-spectral solver at N/k (+ eddy viscosity)"
    family = "spectral"  # type: ignore[assignment]


class CoarseDNS(CoarseClassical):
    name = "coarse_dns"
    summary = "task's fine scheme on the k-coarse grid, no subgrid model (DNS at N/k)"
    family = "dns"  # type: ignore[assignment]


class DNSFloor(CoarseClassical):
    """The coarse-information floor of a time-dependent task (the task's ``"floor"``
    solver): the fine solver started from the exactly filtered state, the band-limited
    inverse of ``R_k`` of the input, restricted after one horizon. A reference row, not a
    competitor: it costs a fine solve, and what it gets wrong is what ``R_k`` of the state
    does not determine. Its rollouts re-filter after every horizon, like every
    coarse-to-coarse map, so they bound what a Markovian map on the coarse state can do
    with the exact dynamics of the band-limited lift."""

    name = "dns_floor"
    summary = "reference: the fine solver from the band-limited inverse of R_k (coarse-information floor)"
    family = "floor"  # type: ignore[assignment]


class CoarseOA(CoarseClassical):
    """The task's Ott-Antonsen model of each super-node's local order parameter on the
    coarse graph (family ``"oa"``): the classical coarse model of oscillator networks."""

    name = "coarse_oa"
    summary = "task's Ott-Antonsen mean-field model per super-node on the coarse graph"
    family = "oa"  # type: ignore[assignment]
    domains = ("graph",)
