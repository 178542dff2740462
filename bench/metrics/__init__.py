"""Metrics registry.

``METRICS`` maps a metric name (as it appears in ``results.csv``) to a `Metric`: a
per-sample function of ``(prediction, target, task inputs, k, spec)``. ``BETTER`` says
for *every* column name that reports and ``compare`` read (cost columns, task-specific
metrics, rollouts included) which direction is better.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.directions import BETTER, better
from bench.metrics import core
from bench.registry import build_registry
from methods.base import Prediction
from tasks.spec import TaskSpec

MetricFn = Callable[[Prediction, np.ndarray, np.ndarray, int, TaskSpec], np.ndarray]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: MetricFn
    probabilistic: bool = False  # needs a predictive variance
    description: str = ""

    def applies(self, spec: TaskSpec) -> str | None:
        """Reason this metric cannot be computed for ``spec``, or None."""
        if self.name == "conservation" and spec.conservation is None:
            return f"task {spec.name} defines no conservation functional"
        return None


def _conservation(p: Prediction, y: np.ndarray, x: np.ndarray, k: int, spec: TaskSpec) -> np.ndarray:
    assert spec.conservation is not None
    return spec.conservation(p.mean, y, x, k)


def _prob(fn: Callable[..., np.ndarray]) -> MetricFn:
    def metric(p: Prediction, y: np.ndarray, x: np.ndarray, k: int, spec: TaskSpec) -> np.ndarray:
        assert p.var is not None
        return fn(p.mean, p.var, y)

    return metric


METRICS: dict[str, Metric] = build_registry(
    [
        Metric("rel_l2", lambda p, y, x, k, s: core.rel_l2(p.mean, y), description="||yhat - y|| / ||y||"),
        Metric("conservation", _conservation, description="task conservation / flux-balance error"),
        Metric("nll", _prob(core.gaussian_nll), True, "Gaussian NLL per point"),
        Metric("ece", _prob(core.quantile_ece), True, "quantile calibration error"),
        Metric("crps", _prob(core.crps_gaussian), True, "continuous ranked probability score"),
        Metric("coverage_90", _prob(core.coverage), True, "share of points in the central 90% interval"),
    ]
)

__all__ = ["METRICS", "BETTER", "Metric", "better", "core"]
