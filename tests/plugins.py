"""Deliberately misbehaving methods, loaded by the tests as external ``module:Class``
specs (which also exercises the plug-in path).

Methods are abstract or final (`nskernel.method`), so these do not subclass the final
`mean` method: they share `MeanBased`, an abstract base that delegates to it and lets
each plugin change its predictions (``alter``) or its fit."""

from __future__ import annotations

import abc
import time

import numpy as np

from methods.mean import MeanField
from nskernel import Method, Prediction


class MeanBased(Method):
    """The `mean` baseline's behaviour; a subclass says how its predictions are altered."""

    @abc.abstractmethod
    def alter(self, p: Prediction) -> Prediction:
        """The prediction this method returns instead of the mean baseline's ``p``."""

    def fit(self, train, spec, budget, ctx):
        self._mean = MeanField().fit(train, spec, budget, ctx)
        return self

    def k_not_supported(self, k: int, k_train: tuple[int, ...]) -> str | None:
        return MeanField().k_not_supported(k, k_train)

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        return self.alter(self._mean.predict(inputs, k))

    def advance(self, state: np.ndarray, k: int) -> Prediction:
        return self.alter(self._mean.advance(state, k))


class Unchanged(MeanBased, abc.ABC):
    """Abstract: the mean baseline unchanged, for plugins that misbehave elsewhere."""

    def alter(self, p: Prediction) -> Prediction:
        return p

    @abc.abstractmethod
    def fit(self, train, spec, budget, ctx): ...


class Raising(Unchanged):
    name = "raising"

    def fit(self, train, spec, budget, ctx):
        raise RuntimeError("boom: this method always fails")


class NaNPredictor(MeanBased):
    name = "nan"

    def alter(self, p: Prediction) -> Prediction:
        p.mean[0, 0, 0, 0] = np.nan
        return p


class Sleeper(Unchanged):
    """Ignores every deadline check: only the hard limit can stop it."""

    name = "sleeper"

    def fit(self, train, spec, budget, ctx):
        time.sleep(60)
        return MeanBased.fit(self, train, spec, budget, ctx)


class Interrupting(Unchanged):
    """Simulates Ctrl-C in the middle of a run."""

    name = "interrupting"

    def fit(self, train, spec, budget, ctx):
        raise KeyboardInterrupt


class Scaled(MeanBased):
    """The mean baseline with a tunable, deliberate degradation (for compare tests)."""

    name = "scaled"

    factor: float = 1.0

    def alter(self, p: Prediction) -> Prediction:
        return Prediction(mean=p.mean * self.factor)
