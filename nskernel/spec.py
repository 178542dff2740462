"""What a task publishes to methods and metrics: `TaskSpec` and its `CoarseSolver`s.

A method is built from a `TaskSpec` alone; it never sees a task's name or class. The
spec therefore carries the shapes *and* the physics hooks (residual, divergence,
coarse and fine solvers) that physics-aware methods and metrics need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nskernel.graph import GraphDomain
from nskernel.grid import restrict as grid_restrict

K_VALUES: tuple[int, ...] = (4, 8, 16)
SIZES: tuple[str, ...] = ("smoke", "small", "paper")


@dataclass(frozen=True)
class CoarseSolver:
    """A classical solver on the k-coarse grid.

    * ``solve(inputs, k, **params) -> ndarray (N, C_out, H/k, W/k)`` from fine inputs.
    * ``advance(state_coarse, k, **params) -> ndarray`` (time-dependent tasks): advance a
      coarse state ``(N, C, H/k, W/k)`` by one horizon; used for rollouts.
    * ``params``: keyword parameters and their defaults (chosen by measurement);
      ``choices`` the valid values of enumerated parameters (checked before a run).
    * ``differentiable(state, closure=None, steps=None, **params) -> (state', steps)``
      (optional, time-dependent tasks): the same scheme in torch, differentiable in the
      coarse torch ``state (B, C, H/k, W/k)`` and in whatever ``closure`` holds. ``closure``
      maps the solver's state (physical fields, same shape, the solver's dtype) to a
      tendency of the same shape that is added after every coarse step ``dt`` as
      ``dt * closure(state at the step's start)``; ``steps`` fixes the number of equal
      steps per horizon (None: the scheme's own CFL rule on the batch, as ``advance``).
      With ``closure=None`` it equals ``advance`` to round-off (each task tests it).
    * ``reference``: a reference row rather than a coarse solver (e.g. the fine solver
      from the band-limited inverse of ``R_k``): scored like one, left out of the
      classical error-cost ladder.
    """

    solve: Callable[..., np.ndarray]
    params: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    advance: Callable[..., np.ndarray] | None = None
    description: str = ""
    differentiable: Callable[..., tuple[Any, int]] | None = None
    reference: bool = False


@dataclass(frozen=True)
class TaskSpec:
    """Everything a method or metric may know about a task.

    Shapes are channel-first: inputs ``(N, in_channels, H, W)``, outputs
    ``(N, out_channels, H // k, W // k)`` for every ``k`` in ``k_values``.

    Graph tasks (``graph`` set, `nskernel.graph.GraphDomain`): fields live on nodes,
    inputs ``(N, in_channels, n_nodes)``, outputs ``(N, out_channels, n_coarse(k))``;
    ``fine_shape == (n_nodes,)`` and ``k_values`` are the graph's partition levels.
    `coarse_shape` and `restrict` dispatch on the domain (``kind``: "grid" or "graph"),
    so the harness and domain-agnostic methods never branch on it themselves.

    Physics hooks (``None`` where a task has no such operator):

    * ``residual(u, inputs, k) -> Tensor``: the task's discrete PDE residual of the torch
      field ``u`` given on the grid coarsened by ``k`` (``k = 1`` is the fine grid), with
      the fine ``inputs`` supplying coefficients/forcing. Differentiable in ``u``.
    * ``divergence(u, k) -> Tensor``: discrete divergence of a velocity output (flows).
    * ``laws(u, inputs, k) -> Tensor (N, m)``: violations of the laws that **every**
      ``R_k`` of the fine solution satisfies exactly (to round-off): conservation,
      sign and bound constraints. Dimensionless, differentiable in ``u``; its squared
      norm per sample is the sum of the squared law metrics of the task, so the filtered
      truth scores 0 (unlike ``residual`` at a coarse level, whose closure error it
      carries). The law form of a physics loss.
    * ``residual_exact``: the fine solution satisfies ``residual`` at ``physics_k`` to
      round-off (a steady fine scheme); then its block sums (the flux balance of every
      coarse cell, from the fine field) are laws too.
    * ``coarse_solvers``: the classical coarse-grid solvers by family (``"fv"``,
      ``"spectral"``), each a `CoarseSolver`; the methods ``coarse_fv`` and
      ``coarse_spectral`` look their family up here and record ``n/a`` if absent.
    * ``fine_solve(inputs) -> ndarray``: the fine solver whose output, restricted, is the
      target; it is the denominator of ``speedup``.

    Time-dependent tasks (``time_dependent=True``): inputs are the state at t (so
    ``in_channels == out_channels``), targets are ``R_k`` of the state at t + horizon,
    and every `CoarseSolver` also has ``advance``. Rollouts are scored at
    ``rollout_horizons`` (multiples of the horizon).
    """

    name: str
    fine_shape: tuple[int, ...]
    in_channels: int
    out_channels: int
    in_names: tuple[str, ...]
    out_names: tuple[str, ...]
    boundary: str
    time_dependent: bool = False
    k_values: tuple[int, ...] = K_VALUES
    domain: tuple[float, float] = (1.0, 1.0)
    residual: Callable[..., Any] | None = None
    #: the finest factor at which physics-informed losses should evaluate ``residual``
    #: (1 = the fine grid); a task raises it where the fine-grid residual is
    #: ill-conditioned or far costlier than the network (turbulence: see its docstring)
    physics_k: int = 1
    divergence: Callable[..., Any] | None = None
    laws: Callable[..., Any] | None = None
    residual_exact: bool = False
    coarse_solvers: Mapping[str, CoarseSolver] = field(default_factory=dict)
    fine_solve: Callable[[np.ndarray], np.ndarray] | None = None
    fine_solver_name: str = ""
    #: the task's physical parameters, in the task's own type: read only by the task's
    #: own hooks and metrics (a method must not depend on it)
    physics: Any = None
    rollout_horizons: tuple[int, ...] = ()
    #: spatial axes of an output field (-2: rows, -1: columns) along which the flow's
    #: statistics are homogeneous; the climatological mean of a time-dependent task (the
    #: reference of the fluctuation error ``fluct_rel_l2``) is the mean of the test
    #: targets over samples and these axes: a profile for a layer or a forced flow
    climatology_axes: tuple[int, ...] = ()
    #: the symmetry group the problem is equivariant under (for equivariant methods):
    #: "p4m" (rotations by 90 degrees and reflections), "p4", "flip_x" (reflection
    #: x -> -x), or "none"
    symmetry: str = "none"
    #: sign of each input / output channel under the reflections of ``symmetry`` (+1: a
    #: scalar; -1: a pseudoscalar such as vorticity, or the reflected component of a
    #: vector such as u under x -> -x); () = every channel is a scalar
    in_parity: tuple[int, ...] = ()
    out_parity: tuple[int, ...] = ()
    #: the continuous PDE for pointwise (PINN-type) solvers; see nskernel/pointwise.py
    pointwise: Any | None = None
    #: the graph of a graph task (None: a grid task)
    graph: GraphDomain | None = None

    def __post_init__(self) -> None:
        if self.graph is not None:
            if self.fine_shape != (self.graph.n_nodes,):
                raise ValueError(f"task {self.name!r}: fine_shape {self.fine_shape} must be (n_nodes,) = "
                                 f"({self.graph.n_nodes},) on a graph")
            missing = [k for k in self.k_values if k not in self.graph.levels]
            if missing:
                raise ValueError(f"task {self.name!r}: k_values {missing} have no partition level; valid: "
                                 f"{', '.join(map(str, self.graph.k_values))}")
        elif len(self.fine_shape) != 2:
            raise ValueError(f"task {self.name!r}: a grid task has a 2-D fine_shape, got {self.fine_shape}")

    @property
    def kind(self) -> str:
        """The domain kind: ``"graph"`` or ``"grid"`` (what `Method.domains` lists)."""
        return "graph" if self.graph is not None else "grid"

    def supports_factor(self, k: int) -> bool:
        """Whether ``k`` is a valid factor: it divides the grid, or names a graph level."""
        try:
            self.coarse_shape(k)
        except ValueError:
            return False
        return True

    def restrict(self, u: Any, k: int, from_k: int = 1) -> Any:
        """``R_k`` of a field given at factor ``from_k`` (1: the fine field), NumPy or torch:
        the block average by ``k / from_k`` on a grid (`nskernel.grid.restrict`), the
        (size-weighted) member mean on a graph (`GraphDomain.restrict`)."""
        if self.graph is not None:
            return self.graph.restrict(u, k, from_k)
        if k % from_k:
            raise ValueError(f"k={k} is not a multiple of from_k={from_k}")
        return grid_restrict(u, k // from_k)

    def coarse_shape(self, k: int) -> tuple[int, ...]:
        """Shape after coarse-graining by ``k``; raises if ``k`` does not divide the grid
        (or names no partition level of the graph)."""
        if self.graph is not None:
            return (self.graph.n_coarse(k),)  # raises naming the valid levels
        h, w = self.fine_shape
        if k < 1 or h % k or w % k:
            raise ValueError(
                f"k={k} does not divide the fine grid {h}x{w} of task {self.name!r}; "
                f"valid k: {', '.join(map(str, valid_ks(self.fine_shape)))}"
            )
        return h // k, w // k


def valid_ks(shape: tuple[int, int]) -> list[int]:
    """Coarse-graining factors (>1) that divide both grid dimensions."""
    h, w = shape
    return [k for k in range(2, min(h, w) + 1) if h % k == 0 and w % k == 0]
