"""The scikit-learn-shaped method contract.

Hyperparameters are keyword arguments of ``__init__``, stored unchanged under the same
names; ``fit(train, spec, budget, ctx)`` returns ``self``; ``predict(inputs, k)``
returns a `Prediction`. Methods are built from a `TaskSpec` only.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bench.config import Budget, Context
from bench.errors import NotApplicable
from tasks.spec import Dataset, TaskSpec


@dataclass
class Prediction:
    """Predictive mean ``(N, C, h, w)`` and, for probabilistic methods, the total
    predictive variance of the same shape (Gaussian approximation)."""

    mean: np.ndarray
    var: np.ndarray | None = None


class Method:
    """Base class. Subclasses declare their hyperparameters as keyword arguments."""

    #: short registry name, e.g. ``"fno"``
    name: ClassVar[str] = ""
    #: one line for ``bench list``
    summary: ClassVar[str] = ""
    #: whether ``predict`` returns a variance
    probabilistic: ClassVar[bool] = False
    #: per-instance solvers (PINNs) are scored on the first ``max_eval_samples`` test
    #: samples only (recorded as ``n`` in every row); None = the whole test set. Read
    #: after ``fit``, so it may depend on the budget
    max_eval_samples: int | None = None

    def __init__(self, **params: Any) -> None:
        if params:
            raise TypeError(f"{type(self).__name__} takes no parameters, got {sorted(params)}")

    # -- parameters -------------------------------------------------------------------
    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Hyperparameters and their defaults, read from the ``__init__`` signature."""
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        return {n: p.default for n, p in sig.parameters.items() if n != "self" and p.kind in kinds}

    def get_params(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.param_defaults()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- applicability ----------------------------------------------------------------
    def not_applicable(self, spec: TaskSpec) -> str | None:
        """A reason why this method cannot run on ``spec``, or ``None`` if it can."""
        return None

    def k_not_supported(self, k: int, k_train: tuple[int, ...]) -> str | None:
        """A reason why this method cannot predict at factor ``k``, or ``None``."""
        return None

    # -- learning ---------------------------------------------------------------------
    def fit(self, train: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> Method:
        raise NotImplementedError

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        raise NotImplementedError

    def predict_many(self, inputs: np.ndarray, ks: Sequence[int]) -> dict[int, Prediction]:
        """Predictions at every factor in ``ks``, equal to ``predict(inputs, k)`` for each.
        Scoring calls this; methods whose work is shared across k (one network pass
        serves every ``R_k``) override it to do that work once. Timing calls `predict`,
        so ``infer_s`` is the cost of one factor on its own."""
        return {k: self.predict(inputs, k) for k in ks}

    def advance(self, state: np.ndarray, k: int) -> Prediction:
        """Coarse-to-coarse map for rollouts of time-dependent tasks: the state one
        horizon later from a coarse state ``(N, C, H/k, W/k)``. Methods that only take
        the fine input raise `NotApplicable` (reported as ``n/a``)."""
        raise NotApplicable(f"{self.name} cannot take a coarse state as input")

    def estimate_s(self, budget: Budget) -> float:
        """Rough wall time of one cell, for the plan printed before a run."""
        return 2.0

    def n_params(self) -> int | None:
        """Number of trainable parameters (``None`` for non-parametric methods)."""
        return None

    # Extra per-cell diagnostics (e.g. training curve) merged into the record.
    def diagnostics(self) -> dict[str, Any]:
        return {}
