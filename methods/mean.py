"""`mean`: predict the training-set mean target. A sanity floor for every leaderboard."""

from __future__ import annotations

import numpy as np

from nskernel import Budget, Context, Dataset, Method, Prediction, TaskSpec


class MeanField(Method):
    """Predicts the mean of the training targets at factor k.

    For a factor never trained on, the mean at the largest trained factor that divides
    ``k`` is restricted further (R_k = R_{k/j} R_j on a grid; on a graph the size-weighted
    mean over the nested coarser level), so the baseline still answers.
    """

    name = "mean"
    summary = "training-set mean target (sanity floor)"
    domains = ("grid", "graph")

    def fit(self, train: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> MeanField:
        self._spec = spec
        self._means = {k: y.astype(np.float64).mean(axis=0) for k, y in train.targets.items()}
        return self

    def k_not_supported(self, k: int, k_train: tuple[int, ...]) -> str | None:
        if not any(k % j == 0 for j in k_train):
            return f"no training factor divides k={k} (trained on {sorted(k_train)})"
        return None

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        j = max(j for j in self._means if k % j == 0)
        field = self._spec.restrict(self._means[j], k, j)
        return Prediction(mean=np.broadcast_to(field, (len(inputs), *field.shape)).copy())

    def advance(self, state: np.ndarray, k: int) -> Prediction:
        return self.predict(state, k)
