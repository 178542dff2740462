"""The continuous-PDE contract for pointwise (PINN-type) solvers: `PointwisePDE` (torch is
imported only by the methods that evaluate it).

A task's `TaskSpec.residual` is a *discrete* grid residual; a PINN needs the PDE at
arbitrary points, differentiated by autograd. A task publishes one `PointwisePDE` in
``TaskSpec.pointwise`` (``None`` where it has none); a pointwise method then solves each
test instance on its own:

1. ``coefficients(sample, x)`` evaluates the instance's input field (e.g. a permeability,
   looked up in the fine cell that contains ``x``) at collocation points ``x``;
2. a network ``x -> raw`` (``len(outputs)`` channels), wrapped by ``constrain(x, raw)``
   which enforces the hard boundary conditions, is trained so that every term of
   ``residual(x, out, coeff)`` vanishes at the collocation points and every soft
   condition of ``conditions(sample)`` (e.g. the initial state) holds at its points;
   periodic coordinates (``periodic``) are embedded periodically by the method;
3. the trained network is read at ``eval_points`` (fine cell centres, at the final time
   for time-dependent tasks) and ``to_field(values, sample)`` turns those values into
   the fine output field ``(C_out, H, W)``; the method restricts it with
   ``nskernel.grid.restrict``.

A time-dependent task may anchor the initial state exactly instead of imposing it
softly: the network then represents the *change* since t (zero at t = 0), the state at t
and its derivatives enter the residual as coefficients, and ``to_field`` adds the state
at t back (see `tasks.convection_pointwise`).

All tensors are ``(n, ·)`` with one row per point; coordinates are in the order of
``coords``. Residuals are returned already non-dimensionalised (O(1) for O(1) errors),
so a method may weight them without knowing the task. Term 0 of ``residual`` is the
*reference* term of adaptive weighting schemes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

Residual = Callable[["torch.Tensor", "torch.Tensor", "torch.Tensor"], list["torch.Tensor"]]


@dataclass(frozen=True, eq=False)
class PointSet:
    """A soft condition: ``out[:, components] == values`` at ``points`` ``(n, d)``."""

    name: str
    points: np.ndarray
    values: np.ndarray  # (n, len(components))
    components: tuple[int, ...]


@dataclass(frozen=True, eq=False)  # holds arrays and callables: compared by identity
class PointwisePDE:
    """A PDE on a box, for solvers that evaluate it at points; see the module docstring.

    * ``coords`` / ``bounds``: coordinate names and the box ``[(lo, hi), ...]``, e.g.
      ``("x", "y")`` or ``("x", "z", "t")`` (time last, starting at 0).
    * ``cells``: fine cells per *spatial* coordinate (in ``coords`` order), so a method
      can place one collocation point per fine cell.
    * ``outputs``: the network's output channels (may differ from the task's outputs,
      e.g. a mixed form adds the flux).
    * ``residual(x, out, coeff) -> [r_0, r_1, ...]``: each ``(n, j)`` (a vector equation
      is one term; its loss is the mean over points and components); ``x`` requires
      grad and ``out`` is ``constrain(x, raw)``, so derivatives come from autograd.
    * ``coefficients(sample, x) -> (n, n_coefficients)``: the instance's input field
      ``sample (C_in, H, W)`` evaluated at points ``x (n, d)`` (NumPy, float64).
    * ``constrain(x, raw) -> out``: hard constraints (Dirichlet walls, output scales);
      ``None`` means ``out = raw``.
    * ``conditions(sample) -> [PointSet, ...]``: soft conditions of the instance (e.g. a
      soft initial state or data); ``None`` when there are none.
    * ``eval_points (P, d)`` and ``to_field(values (P, len(outputs)), sample) -> (C_out,
      H, W)``.
    * ``infeasible``: a reason why a pointwise solver cannot reach a meaningful answer
      for this configuration (recorded as ``n/a``), or ``""``.
    """

    coords: tuple[str, ...]
    bounds: tuple[tuple[float, float], ...]
    cells: tuple[int, ...]
    outputs: tuple[str, ...]
    residual_names: tuple[str, ...]
    residual: Residual
    coefficients: Callable[[np.ndarray, np.ndarray], np.ndarray]
    n_coefficients: int
    eval_points: np.ndarray
    to_field: Callable[[np.ndarray, np.ndarray], np.ndarray]
    constrain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    periodic: tuple[bool, ...] = ()
    conditions: Callable[[np.ndarray], list[PointSet]] | None = None
    infeasible: str = ""
    description: str = ""
    #: free-form facts about the formulation, recorded with results (e.g. scales)
    notes: dict[str, float | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.coords):
            raise ValueError(f"{len(self.coords)} coords but {len(self.bounds)} bounds")
        if self.periodic and len(self.periodic) != len(self.coords):
            raise ValueError("periodic needs one flag per coordinate")
        if self.eval_points.shape[1:] != (len(self.coords),):
            raise ValueError(f"eval_points must be (P, {len(self.coords)}), got {self.eval_points.shape}")

    @property
    def dim(self) -> int:
        return len(self.coords)

    @property
    def time_dependent(self) -> bool:
        return self.coords[-1] == "t"

    def is_periodic(self, i: int) -> bool:
        return bool(self.periodic) and self.periodic[i]

    def apply(self, x: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """The constrained output ``constrain(x, raw)`` (or ``raw``)."""
        return raw if self.constrain is None else self.constrain(x, raw)

    def soft_conditions(self, sample: np.ndarray, n_max: int, rng: np.random.Generator) -> list[PointSet]:
        """The instance's soft conditions, each cut to at most ``n_max`` random points."""
        conds = self.conditions(sample) if self.conditions is not None else []
        return [subsample(c, n_max, rng) for c in conds]

    def embed(self, x: torch.Tensor, modes: int = 1) -> torch.Tensor:
        """Network features of points ``x (n, d)``: each bounded coordinate mapped to
        ``[-1, 1]``, each periodic one replaced by ``cos, sin`` of its first ``modes``
        harmonics, so the network is periodic by construction."""
        import torch

        cols = []
        for i, (lo, hi) in enumerate(self.bounds):
            xi = x[:, i : i + 1]
            if self.is_periodic(i):
                phase = (2.0 * np.pi / (hi - lo)) * (xi - lo)
                cols += [f(m * phase) for m in range(1, modes + 1) for f in (torch.cos, torch.sin)]
            else:
                cols.append(2.0 * (xi - lo) / (hi - lo) - 1.0)
        return torch.cat(cols, dim=1)

    def embedded_dim(self, modes: int = 1) -> int:
        return sum(2 * modes if self.is_periodic(i) else 1 for i in range(self.dim))

    def collocation(self, rng: np.random.Generator, n: int, time_slices: int = 1) -> np.ndarray:
        """About ``n`` stratified random collocation points ``(n', d)``.

        The spatial box is cut into a regular grid of strata shaped like the fine grid
        (``n`` = the number of fine cells gives exactly the fine cells, so every
        coefficient cell holds a point), one uniform point per stratum; time-dependent
        problems use ``n / time_slices`` strata and ``time_slices`` independent uniform
        times in each.
        """
        n_space = len(self.cells)
        per_stratum = time_slices if self.time_dependent else 1
        scale = (max(n / per_stratum, 1.0) / float(np.prod(self.cells))) ** (1.0 / n_space)
        counts = [max(1, int(round(c * scale))) for c in self.cells]
        idx = np.stack(np.meshgrid(*[np.arange(c) for c in counts], indexing="ij"), axis=-1).reshape(-1, n_space)
        lo = np.array([b[0] for b in self.bounds[:n_space]])
        width = np.array([b[1] - b[0] for b in self.bounds[:n_space]]) / np.array(counts)
        pts = lo + (idx + rng.random(idx.shape)) * width
        if self.time_dependent:
            t0, t1 = self.bounds[-1]
            pts = np.repeat(pts, per_stratum, axis=0)
            pts = np.concatenate([pts, t0 + (t1 - t0) * rng.random((len(pts), 1))], axis=1)
        return pts


def subsample(cond: PointSet, n: int, rng: np.random.Generator) -> PointSet:
    """At most ``n`` points of a soft condition, drawn without replacement."""
    if len(cond.points) <= n:
        return cond
    keep = np.sort(rng.choice(len(cond.points), size=n, replace=False))
    return PointSet(cond.name, cond.points[keep], cond.values[keep], cond.components)


__all__ = ["PointSet", "PointwisePDE", "subsample"]
