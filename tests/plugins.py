"""Deliberately misbehaving methods, loaded by the tests as external ``module:Class``
specs (which also exercises the plug-in path)."""

from __future__ import annotations

import time

import numpy as np

from methods.base import Prediction
from methods.mean import MeanField


class Raising(MeanField):
    name = "raising"

    def fit(self, train, spec, budget, ctx):
        raise RuntimeError("boom: this method always fails")


class NaNPredictor(MeanField):
    name = "nan"

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        p = super().predict(inputs, k)
        p.mean[0, 0, 0, 0] = np.nan
        return p


class Sleeper(MeanField):
    """Ignores every deadline check: only the hard limit can stop it."""

    name = "sleeper"

    def fit(self, train, spec, budget, ctx):
        time.sleep(60)
        return super().fit(train, spec, budget, ctx)


class Interrupting(MeanField):
    """Simulates Ctrl-C in the middle of a run."""

    name = "interrupting"

    def fit(self, train, spec, budget, ctx):
        raise KeyboardInterrupt


class Scaled(MeanField):
    """The mean baseline with a tunable, deliberate degradation (for compare tests)."""

    name = "scaled"

    def __init__(self, factor: float = 1.0) -> None:
        self.factor = factor

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        p = super().predict(inputs, k)
        return Prediction(mean=p.mean * self.factor)
