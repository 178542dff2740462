"""Classical coarse-grid solvers as methods: `coarse_fv` and `coarse_spectral`.

Each task publishes its classical solvers in ``spec.coarse_solvers`` by family; these
methods only look the family up, pass their parameters through and never train. Their
parameters are the task's solver parameters (e.g. ``coarse_fv:mean=harmonic`` for Darcy),
validated against the defaults the task declares.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from bench.config import Budget, Context
from bench.errors import UsageError
from methods.base import Method, Prediction
from tasks.spec import CoarseSolver, Dataset, TaskSpec


class CoarseClassical(Method):
    """Base for the classical coarse solvers; ``family`` selects the task's solver."""

    family: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        # Parameters belong to the task's solver; they are checked against it in `fit`.
        self.params = dict(params)

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        return {}

    def get_params(self) -> dict[str, Any]:
        return dict(self.params)

    def _solver(self, spec: TaskSpec) -> CoarseSolver:
        return spec.coarse_solvers[self.family]

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if self.family not in spec.coarse_solvers:
            return f"task {spec.name} has no classical '{self.family}' coarse solver"
        solver = self._solver(spec)
        unknown = sorted(set(self.params) - set(solver.params))
        if unknown:
            valid = ", ".join(sorted(solver.params)) or "none"
            raise UsageError(f"{self.name}: unknown parameter(s) {unknown} for task {spec.name}; valid: {valid}")
        for key, value in self.params.items():
            if key in solver.choices and value not in solver.choices[key]:
                valid = ", ".join(map(str, solver.choices[key]))
                raise UsageError(f"{self.name}: {key}={value} is not valid for task {spec.name}; valid: {valid}")
        return None

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
    family = "fv"


class CoarseSpectral(CoarseClassical):
    name = "coarse_spectral"
    summary = "task's pseudo-spectral solver at N/k (+ eddy viscosity)"
    family = "spectral"
