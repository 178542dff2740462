"""`Method`: the scikit-learn-shaped contract every method implements, declared whole.

* **Hyperparameters are declared once, as annotated class attributes with defaults**
  (dataclass fields). Every subclass is turned into a keyword-only dataclass when it is
  defined, so the constructor, `param_defaults` and `get_params` all come from that one
  declaration; a family shares its block by declaring it on its abstract base. Values
  are stored unchanged; `check_params` (called after construction) rejects bad values.
  Anything that is not a hyperparameter must not be an annotated class attribute
  (use ``ClassVar`` or set it in ``fit``).
* **Abstract or final.** A method class either leaves something abstract (a family
  base) or is final: subclassing a concrete method is refused when the subclass is
  defined, so behaviour is shared through abstract bases, never by inheriting from a
  registered method.
* ``fit(train, spec, budget, ctx) -> self``; ``predict(inputs, k) -> Prediction``.
  Methods are built from the `TaskSpec` only; they never see a task's name or class.
* Domains: ``domains`` (a class attribute) lists the domain kinds a method runs on
  (``"grid"``, ``"graph"``; `TaskSpec.kind`), grid only unless a method says otherwise;
  the harness records a method on a task of another kind ``n/a`` with the reason
  (`domain_not_supported`), before `check_spec` or `not_applicable` is asked.
* Applicability: `not_applicable(spec)` is pure (a reason or None, never raises);
  parameters that a task rejects raise `UsageError` from `check_spec(spec)`, which the
  harness calls before anything runs.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nskernel.budget import Budget
from nskernel.context import Context
from nskernel.data import Dataset
from nskernel.errors import NotApplicable
from nskernel.prediction import Prediction
from nskernel.spec import TaskSpec


@dataclass(frozen=True)
class TimingHints:
    """How the harness times a method's inference (``infer_s``, ``speedup``).

    ``batch`` samples per timed call (the fine solver is timed on the same batch),
    ``repeats`` timed calls (median), ``warmup`` untimed calls first, ``attempts`` retries
    while the machine is loaded. ``k_independent``: one solve serves every factor (e.g.
    per-instance solvers), so the method is timed once and that time is reported at
    every k. Per-size caps of the harness (smoke) apply on top."""

    batch: int = 16
    repeats: int = 5
    warmup: int = 1
    attempts: int = 3
    k_independent: bool = False


class Method(abc.ABC):
    """Base of every method; see the module docstring for the protocol."""

    #: short registry name, e.g. ``"fno"``
    name: ClassVar[str] = ""
    #: one line for ``bench list``
    summary: ClassVar[str] = ""
    #: whether ``predict`` returns a variance (a property where it depends on parameters)
    probabilistic: ClassVar[bool] = False
    #: how the harness times inference
    timing: ClassVar[TimingHints] = TimingHints()
    #: whether ``fit`` learns from the training data; the cost of generating them is
    #: then part of what the method must amortise (``breakeven_solves``)
    uses_training_data: ClassVar[bool] = True
    #: accepts parameters it does not declare (passed through to a task's own solver and
    #: checked in `check_spec`); ``param_defaults`` is then empty
    open_params: ClassVar[bool] = False
    #: the domain kinds (`TaskSpec.kind`) the method runs on
    domains: ClassVar[tuple[str, ...]] = ("grid",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__mro__[1:]:
            if base is not Method and issubclass(base, Method) and not inspect.isabstract(base):
                raise TypeError(
                    f"{cls.__name__} subclasses the concrete method {base.__name__}: methods are abstract "
                    f"or final; subclass {base.__name__}'s abstract base (or Method) instead")
        # The hyperparameter declaration: annotated class attributes become keyword-only
        # constructor arguments (open-parameter methods write their own __init__).
        dataclasses.dataclass(cls, init=not cls.open_params, kw_only=True, eq=False, repr=False)
        missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        if missing:
            raise TypeError(f"{cls.__name__}: hyperparameters {missing} need a default")

    def __post_init__(self) -> None:
        self.check_params()

    # -- parameters -------------------------------------------------------------------
    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Hyperparameters and their defaults, in declaration order."""
        if not dataclasses.is_dataclass(cls):
            return {}
        return {f.name: f.default for f in dataclasses.fields(cls)}

    def get_params(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.param_defaults()}

    def check_params(self) -> None:  # noqa: B027 -- an optional hook: nothing to check by default
        """Raise ``ValueError`` for hyperparameter values that are invalid on any task."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- applicability ----------------------------------------------------------------
    def check_spec(self, spec: TaskSpec) -> None:  # noqa: B027 -- an optional hook
        """Raise `UsageError` for parameters that task ``spec`` rejects (called by the
        harness before a run starts, so a bad variant fails before anything runs)."""

    def not_applicable(self, spec: TaskSpec) -> str | None:
        """A reason why this method cannot run on ``spec``, or ``None`` if it can. Pure."""
        return None

    def k_not_supported(self, k: int, k_train: tuple[int, ...]) -> str | None:
        """A reason why this method cannot predict at factor ``k``, or ``None``."""
        return None

    # -- learning ---------------------------------------------------------------------
    @abc.abstractmethod
    def fit(self, train: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> Method:
        """Learn from ``train`` (targets at the training factors only); returns self."""

    @abc.abstractmethod
    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        """The coarse output at factor ``k`` for fine ``inputs`` ``(N, C_in, H, W)``."""

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

    def clear_cache(self) -> None:  # noqa: B027 -- an optional hook: most methods cache nothing
        """Forget work cached across ``predict`` calls; the timing harness calls it inside
        every timed call so that ``infer_s`` includes the whole computation."""

    # -- trained state ------------------------------------------------------------------
    def truncation(self) -> str | None:
        """Why training stopped before its budget (the wall-clock safety cap), or None.
        The harness records such a cell ``truncated``, never as a normal result."""
        return None

    def late_validation_gain(self) -> float | None:
        """How much the validation error still fell over the last fifth of training
        (relative; the largest over a method's networks), or None where it was not
        measured (no training on a validation split, or too few epochs to judge)."""
        return None

    def save(self, directory: Path) -> bool:
        """Write the fitted state into ``directory`` (tensors and plain metadata only) so
        that `restore` rebuilds this fitted method; False when there is nothing to keep
        (methods that learn nothing, or solve every instance anew)."""
        return False

    def restore(self, directory: Path, spec: TaskSpec, ctx: Context) -> Method:
        """This method (built with the saved hyperparameters) fitted as `save` left it,
        read without running code from the files; raises ``ValueError`` for a missing,
        corrupt or mismatched checkpoint."""
        raise NotApplicable(f"{self.name} keeps no trained state to reload")

    # -- what the harness records -----------------------------------------------------
    def max_eval_samples(self) -> int | None:
        """Score only the first this many test samples (per-instance solvers, whose solves
        take minutes; recorded as ``n`` in every row); None = the whole test set. Called
        after ``fit``, so it may depend on the budget."""
        return None

    def estimate_s(self, budget: Budget) -> float:
        """Rough wall time of one cell, for the plan printed before a run."""
        return 2.0

    def n_params(self) -> int | None:
        """Number of trainable parameters (``None`` for non-parametric methods)."""
        return None

    def diagnostics(self) -> dict[str, Any]:
        """Extra per-cell facts (e.g. the training curve) merged into the record."""
        return {}


DOMAIN_KINDS: tuple[str, ...] = ("grid", "graph")


def domain_not_supported(method: Method, spec: TaskSpec) -> str | None:
    """Why ``method`` cannot run on the domain of ``spec`` (a reason naming both), or None.
    A wrapper runs where both it and its wrapped method do."""
    unknown = [d for d in type(method).domains if d not in DOMAIN_KINDS]
    if unknown:
        raise ValueError(f"{type(method).__name__}.domains has unknown kind(s) {unknown}; valid: "
                         f"{', '.join(DOMAIN_KINDS)}")
    if spec.kind not in type(method).domains:
        return (f"{method.name} runs on {' and '.join(type(method).domains)} domains; task {spec.name} is on a "
                f"{spec.kind}")
    if isinstance(method, WrapperMethod):
        return domain_not_supported(method.wrapped, spec)
    return None


class WrapperMethod(Method):
    """Abstract base of a method built around another one (a calibration wrapper, say).

    ``base`` is the wrapped method's spec as on the command line (``fno``,
    ``fno:width=32``); the harness builds it and hands it over with `wrap` right after
    construction (kernel and methods never import the registry, so they cannot build it
    themselves). `wrapped` is that method."""

    base: str = ""

    def wrap(self, base: Method) -> None:
        if isinstance(base, WrapperMethod):
            raise ValueError(f"{self.name} cannot wrap another wrapper ({base.name})")
        self._wrapped = base

    @property
    def wrapped(self) -> Method:
        try:
            return self._wrapped
        except AttributeError:
            raise RuntimeError(f"{self.name}: no base method handed over; build it with bench.names.build_method "
                               "or call wrap(method)") from None
