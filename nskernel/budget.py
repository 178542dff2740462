"""`Budget`: how much training a method may do in one cell (the harness's per-size
tables of budgets live in ``bench.config``).

A budget counts optimisation work, never seconds, so the same command trains the same
steps on every machine and under any load:

* ``mode="epochs"``: ``epochs`` passes over the training set;
* ``mode="flops"``: ``flops`` floating-point operations of training (forward and
  backward), turned into a step count per method from the counted cost of one of its
  training steps (`methods.training.count_step_flops`): equal compute for every method,
  and the same steps everywhere because the count does not depend on the machine.

``max_train_s`` is only a safety cap: training stopped by it is recorded ``truncated``
and shown as such in every table, never as a normal result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

BUDGET_MODES: tuple[str, ...] = ("epochs", "flops")


@dataclass(frozen=True)
class Budget:
    """How much training a method may do in one cell; see the module docstring."""

    epochs: int
    max_train_s: float
    batch_size: int
    mode: str = "epochs"
    #: training FLOPs per cell (mode "flops")
    flops: float = 0.0
    #: the benchmark size this budget belongs to (methods with their own per-size
    #: settings, e.g. the PINNs' step counts, look them up by it); "" for a custom budget
    size: str = ""
    #: rough training wall time of one neural cell on a 2-core CPU (measured), for the
    #: plan printed before a run only; 0 = unknown
    expected_s: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in BUDGET_MODES:
            raise ValueError(f"unknown budget mode {self.mode!r}; valid: {', '.join(BUDGET_MODES)}")
        if self.epochs < 0:  # 0: no training at all (untrained weights, e.g. for timing)
            raise ValueError(f"epochs must be non-negative, got {self.epochs}")
        if self.mode == "flops" and not self.flops > 0:
            raise ValueError(f"a FLOP budget needs flops > 0, got {self.flops}")
        if not self.max_train_s > 0:
            raise ValueError(f"max_train_s must be positive, got {self.max_train_s}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")

    def override(self, epochs: int | None = None, max_train_s: float | None = None,
                 flops: float | None = None, batch_size: int | None = None) -> Budget:
        """This budget with the given fields replaced (None keeps a field): the
        ``--epochs`` / ``--flops`` / ``--max-train-s`` / ``--batch-size`` options of
        ``bench run``. ``epochs`` switches to the epoch mode, ``flops`` to the FLOP mode."""
        out = self if batch_size is None else replace(self, batch_size=batch_size)
        if epochs is not None:
            out = replace(out, mode="epochs", epochs=epochs)
        if flops is not None:
            out = replace(out, mode="flops", flops=flops)
        if max_train_s is not None:
            out = replace(out, max_train_s=max_train_s)
        return out

    def share(self, fraction: float) -> Budget:
        """``fraction`` of this budget, for one phase or one network of several trained
        one after another: the epochs (rounded up, at least one), FLOPs and time cap."""
        if not 0 < fraction <= 1:
            raise ValueError(f"a budget share must be in (0, 1], got {fraction}")
        return replace(self, epochs=max(1, math.ceil(self.epochs * fraction - 1e-9)), flops=self.flops * fraction,
                       max_train_s=self.max_train_s * fraction, expected_s=self.expected_s * fraction)

    def split(self, n: int) -> Budget:
        """The share of each of ``n`` networks trained one after another (ensemble
        members): ``1/n`` of the budget, so an ensemble costs what one network costs.
        Epochs round up to at least one per member, so where epochs bind an ensemble of
        ``n > epochs`` members costs ``n`` epochs."""
        if n < 1:
            raise ValueError(f"cannot split a budget into {n} shares")
        return self.share(1.0 / n)

    def describe(self) -> str:
        """One line for reports: what bounds training, and the safety cap."""
        bound = f"{self.epochs} epochs" if self.mode == "epochs" else f"{self.flops:.3g} training FLOPs"
        return f"{bound} (batch {self.batch_size}); wall-clock safety cap {self.max_train_s:g} s"

    def expected_train_s(self) -> float:
        """Rough training time of a neural cell for run plans (capped by the time cap)."""
        guess = self.expected_s if self.expected_s > 0 else 1.0 * max(self.epochs, 1)
        return min(self.max_train_s, guess)

    def expected_eval_s(self) -> float:
        """Rough scoring time of a neural method's cell (metrics, rollouts, timing) for
        run plans: ~2 s at smoke, ~10 s at the larger sizes."""
        return 2.0 if self.size == "smoke" else 10.0
