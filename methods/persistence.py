"""`persistence`: the state does not change. The classical no-skill reference of
time-dependent tasks: the prediction at factor k is ``R_k`` of the input state at t, and
a rollout returns its coarse state unchanged at every step. A learned map that does not
beat it has learned nothing about the dynamics over the horizon."""

from __future__ import annotations

import numpy as np

from nskernel import Budget, Context, Dataset, Method, Prediction, TaskSpec


class Persistence(Method):
    name = "persistence"
    summary = "the input state, restricted by R_k, as the prediction (time-dependent tasks)"
    uses_training_data = False  # nothing is learned: no data cost to amortise
    domains = ("grid", "graph")

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if not spec.time_dependent or spec.in_channels != spec.out_channels:
            return f"task {spec.name} is not time-dependent: there is no state to persist"
        return None

    def fit(self, train: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> Persistence:
        self._spec = spec  # nothing to learn; the spec supplies R_k (grid or graph)
        return self

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        return Prediction(mean=np.asarray(self._spec.restrict(np.asarray(inputs, dtype=np.float64), k)))

    def advance(self, state: np.ndarray, k: int) -> Prediction:
        return Prediction(mean=np.asarray(state, dtype=np.float64).copy())


__all__ = ["Persistence"]
