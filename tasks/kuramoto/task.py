"""Kuramoto oscillators on a scale-free graph: the suite's graph task (issue #22).

    d(phi_i)/dt = omega_i + K sum_j w_ij sin(phi_j - phi_i),   w_ij = A_ij / sum_j A_ij,

on the largest component of a Chung-Lu power-law graph (`graphs.power_law_graph`), with
static natural frequencies ``omega_i ~ N(0, 1)`` and K near the measured critical
coupling of this family (K_c ~ 2.0, docs/kuramoto.md). The observable per node is
``(cos phi_i, sin phi_i)``; a sample's input is it at time t on every node ``(2, n)``,
its target at factor k the member mean over each super-node of level k (the local order
parameter ``z_a``) one sampling interval ``dt`` later ``(2, n_coarse(k))``; rollouts hold
those means at t + j dt, j = 0..8. Levels k = 4, 8, 16 are the nested partitions after 2,
3, 4 rounds of pairwise heavy-edge matching (``n / k`` super-nodes,
`graphs.partition_hierarchy`), published as ``TaskSpec.graph`` and stored with the data.

``noise``: ROMA's 2% and 10% variants, noise "on input and output training data": Gaussian
noise of RMS magnitude ``noise`` on each node's unit vector of every input, and on each
node's observation one interval later for the training and validation samples, whose
targets are then ``R_k`` of the noisy observation (measurement noise averaged over a
super-node's members; ``target_noise=False``: inputs only). The test targets and all
rollouts stay clean: methods are scored against the true dynamics. The fine solver is the
batched Dormand-Prince stepper (`solver.integrate`); the classical coarse solver is the
Ott-Antonsen model per super-node (`coarse.CoarseModel`, family ``"oa"``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from nskernel import SIZES, CoarseSolver, Dataset, GraphDomain, Metric, TaskSpec
from tasks.kuramoto import metrics as km
from tasks.kuramoto.coarse import CoarseModel
from tasks.kuramoto.graphs import coupling_matrix, partition_hierarchy, power_law_graph
from tasks.kuramoto.solver import ATOL, RTOL, SAMPLE_DT, integrate, observables

K_LEVELS: dict[int, int] = {4: 2, 8: 3, 16: 4}  # factor k -> rounds of pairwise matching
ROLLOUT_STEPS = 8
SPINUP_TOL = 1e-6  # the transient's accuracy does not matter: only the state it ends in

_SIZES: dict[str, dict[str, Any]] = {
    "smoke": {"nodes": 1200, "n_train": 32, "n_test": 8, "n_val": 8, "snapshots": 4, "spinup": 5.0, "batch": 4},
    "small": {"nodes": 55_000, "n_train": 256, "n_test": 64, "n_val": 64, "snapshots": 8, "spinup": 20.0,
              "batch": 4},
    "paper": {"nodes": 1_200_000, "n_train": 1024, "n_test": 256, "n_val": 256, "snapshots": 8, "spinup": 20.0,
              "batch": 2},
}


@dataclass(frozen=True)
class KuramotoGraph:
    """The task's fixed graph: coupling matrix, frequencies and the published domain."""

    w: sp.csr_matrix
    omega: np.ndarray
    domain: GraphDomain


@lru_cache(maxsize=4)
def build_graph(nodes: int, exponent: float, mean_degree: float, seed: int) -> KuramotoGraph:
    """Graph, ``W``, frequencies (``default_rng([seed, 1])``) and partition levels; cached."""
    adj = power_law_graph(nodes, exponent, mean_degree, seed)
    w = coupling_matrix(adj)
    n = w.shape[0]
    parts = partition_hierarchy(adj, levels=max(K_LEVELS.values()), factor=2.0, seed=seed)
    if len(parts) <= max(K_LEVELS.values()):
        raise ValueError(f"the partition hierarchy of a {n}-node graph stopped at level {len(parts) - 1}")
    omega = np.random.default_rng([seed, 1]).standard_normal(n)
    coo = w.tocoo()
    domain = GraphDomain(
        n_nodes=n, edges=np.stack([coo.row, coo.col]).astype(np.int64), weights=coo.data.astype(np.float64),
        levels={k: parts[lvl].members for k, lvl in K_LEVELS.items()}, node_features={"omega": omega})
    return KuramotoGraph(w, omega, domain)


@dataclass(frozen=True)
class Kuramoto:
    """Kuramoto oscillators on a power-law graph, targets on nested node partitions.

    See the module docstring. ``nodes`` is the requested Chung-Lu size (the largest
    component keeps ~85-95%); ``coupling`` is K; samples: ``snapshots`` per trajectory,
    ``spacing`` time units apart, after ``spinup`` time units from uniform random phases;
    trajectories integrated in groups of ``batch`` (one shared step), so a smaller dataset
    is a prefix of a larger one."""

    name: ClassVar[str] = "kuramoto"
    metrics: ClassVar[tuple[Metric, ...]] = (km.SYM_REL_L2, km.ORDER_ERR, km.DISC)
    size: str = "small"
    nodes: int = 55_000
    exponent: float = 2.2
    mean_degree: float = 8.0
    graph_seed: int = 0
    coupling: float = 2.0
    noise: float = 0.0
    # noise also on the training and validation targets (ROMA's "input and output training
    # data"); False: inputs only, as generated before session 10. A field, so that the two
    # kinds of data never share a cache entry.
    target_noise: bool = True
    interval: float = SAMPLE_DT
    spinup: float = 20.0
    spacing: float = 1.0
    snapshots: int = 8
    rtol: float = RTOL
    atol: float = ATOL
    batch: int = 4
    threads: int = 2
    n_train: int = 256
    n_test: int = 64
    n_val: int = 64

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; valid: {', '.join(SIZES)}")
        if self.snapshots < 1 or any(n % self.snapshots for n in (self.n_train, self.n_test, self.n_val)):
            raise ValueError(f"n_train={self.n_train}, n_test={self.n_test} and n_val={self.n_val} must be "
                             f"multiples of snapshots={self.snapshots}")
        if self.spacing <= ROLLOUT_STEPS * self.interval:
            raise ValueError(f"spacing={self.spacing} must exceed a rollout window ({ROLLOUT_STEPS} x {self.interval})")
        if not 0.0 <= self.noise < 1.0:
            raise ValueError(f"noise must lie in [0, 1), got {self.noise}")
        if self.nodes < 64 or self.coupling < 0 or self.interval <= 0 or self.batch < 1:
            raise ValueError("nodes >= 64, coupling >= 0, interval > 0 and batch >= 1 are required")

    @classmethod
    def sized(cls, size: str) -> Kuramoto:
        if size not in _SIZES:
            raise ValueError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
        return cls(size=size, **_SIZES[size])

    def with_threads(self, threads: int) -> Kuramoto:
        return dataclasses.replace(self, threads=threads)  # SciPy's sparse products use one thread

    @property
    def graph(self) -> KuramotoGraph:
        return build_graph(self.nodes, self.exponent, self.mean_degree, self.graph_seed)

    # -- solvers ----------------------------------------------------------------------
    def fine_solve(self, inputs: np.ndarray) -> np.ndarray:
        """Observables ``(N, 2, n)`` one interval after the fine state ``inputs (N, 2, n)``
        (phases from ``atan2``, so a noisy input is projected onto the unit circle)."""
        x = np.asarray(inputs, dtype=np.float64)
        phi, _ = integrate(np.arctan2(x[:, 1], x[:, 0]), self.graph.omega, self.coupling, self.graph.w,
                           np.array([0.0, self.interval]), self.rtol, self.atol)
        return observables(phi[-1])

    def oa_model(self, k: int) -> CoarseModel:
        return _oa_model(self, k)

    def oa_advance(self, state: np.ndarray, k: int) -> np.ndarray:
        """The Ott-Antonsen model of level k over one interval from coarse ``(N, 2, n_k)``."""
        x = np.asarray(state, dtype=np.float64)
        z, _ = self.oa_model(k).advance(x[:, 0] + 1j * x[:, 1], self.coupling, np.array([0.0, self.interval]),
                                        self.rtol, self.atol)
        return np.stack([z[-1].real, z[-1].imag], axis=1)

    def oa_solve(self, inputs: np.ndarray, k: int) -> np.ndarray:
        return self.oa_advance(self.graph.domain.restrict(np.asarray(inputs, dtype=np.float64), k), k)

    def spec(self) -> TaskSpec:
        g = self.graph.domain
        oa = CoarseSolver(solve=lambda x, k: self.oa_solve(x, k), advance=lambda s, k: self.oa_advance(s, k),
                          description="Ott-Antonsen model per super-node, Lorentzian fit of the members' frequencies")
        return TaskSpec(
            name=self.name, fine_shape=(g.n_nodes,), in_channels=2, out_channels=2, in_names=("cos", "sin"),
            out_names=("cos", "sin"), boundary="graph", time_dependent=True, k_values=tuple(sorted(K_LEVELS)),
            coarse_solvers={"oa": oa}, fine_solve=self.fine_solve, fine_solver_name=self.fine_solver_name(),
            laws=km.disc_law, physics=self, rollout_horizons=(1, 2, 4, 8), graph=g)

    def fine_solver_name(self) -> str:
        return f"dopri5-rtol{self.rtol:g}-n{self.graph.domain.n_nodes}"

    # -- data -------------------------------------------------------------------------
    def _group(self, g: int, seed: int) -> np.ndarray:
        """Observables ``(batch * snapshots, 1 + ROLLOUT_STEPS, 2, n)`` of trajectory group
        g, trajectory-major (the samples' order)."""
        n = self.graph.domain.n_nodes
        first = g * self.batch
        phi0 = np.stack([np.random.default_rng([seed, j]).uniform(-np.pi, np.pi, n)
                         for j in range(first, first + self.batch)])
        om, w = self.graph.omega, self.graph.w
        phi, _ = integrate(phi0, om, self.coupling, w, np.array([0.0, self.spinup]), SPINUP_TOL, SPINUP_TOL)
        window = np.arange(ROLLOUT_STEPS + 1) * self.interval
        times = (np.arange(self.snapshots)[:, None] * self.spacing + window).ravel()
        phi, _ = integrate(phi[-1], om, self.coupling, w, times, self.rtol, self.atol)
        phi = phi.reshape(self.snapshots, ROLLOUT_STEPS + 1, self.batch, n).transpose(2, 0, 1, 3)
        return observables(phi.reshape(self.batch * self.snapshots, ROLLOUT_STEPS + 1, n))

    def generate(self, n: int, seed: int, progress: bool = False) -> Dataset:
        """``n`` samples; sample i is snapshot ``i % snapshots`` of trajectory
        ``i // snapshots`` (initial phases from ``default_rng([seed, j])``), its input
        noise from ``default_rng([seed, i, 2])``, its target noise (training and validation
        samples) from ``default_rng([seed, i, 3])``. Stored in float32 (``R_k`` in float64)."""
        t0 = time.perf_counter()
        dom = self.graph.domain
        n_traj = -(-n // self.snapshots)
        groups = -(-n_traj // self.batch)
        inputs, fine, r = [], [], []
        targets: dict[int, list[np.ndarray]] = {k: [] for k in dom.k_values}
        rollouts: dict[int, list[np.ndarray]] = {k: [] for k in dom.k_values}
        for g in range(groups):
            obs = self._group(g, seed)  # (samples of the group, steps, 2, nodes)
            inputs.append(obs[:, 0].astype(np.float32))
            fine.append(obs[:, 1].astype(np.float32))
            r.append(np.hypot(obs[:, 0, 0].mean(-1), obs[:, 0, 1].mean(-1)))
            for k in dom.k_values:
                roll = dom.restrict(obs, k)
                rollouts[k].append(roll.astype(np.float32))
                targets[k].append(roll[:, 1].astype(np.float32))
            if progress:
                print(f"kuramoto: trajectory group {g + 1}/{groups} ({time.perf_counter() - t0:.0f} s)", flush=True)
        x, y = np.concatenate(inputs)[:n], np.concatenate(fine)[:n]
        ys = {k: np.concatenate(v)[:n] for k, v in targets.items()}
        if self.noise:
            test = range(self.n_train, self.n_train + self.n_test)  # the harness's split (bench.data)
            for i in range(n):
                eps = np.random.default_rng([seed, i, 2]).standard_normal(x[i].shape)
                x[i] += (self.noise / np.sqrt(2.0) * eps).astype(np.float32)
                if self.target_noise and i not in test:
                    eps = self.noise / np.sqrt(2.0) * np.random.default_rng([seed, i, 3]).standard_normal(y[i].shape)
                    y[i] += eps.astype(np.float32)
                    for k in ys:
                        ys[k][i] += dom.restrict(eps, k).astype(np.float32)
        order = np.concatenate(r)[:n]
        meta = {"task": self.name, "seed": seed, "solver": self.fine_solver_name(), "n_nodes": dom.n_nodes,
                "n_edges": int(dom.edges.shape[1] // 2), "n_coarse": {k: dom.n_coarse(k) for k in dom.k_values},
                "order_parameter_mean": float(order.mean()), "order_parameter_std": float(order.std()),
                "trajectories": int(n_traj), "generate_s": round(time.perf_counter() - t0, 2)}
        return Dataset(
            inputs=x, fine=y, targets=ys,
            rollouts={k: np.concatenate(v)[:n] for k, v in rollouts.items()},
            meta=meta, static=graph_arrays(dom))


def graph_arrays(dom: GraphDomain) -> dict[str, np.ndarray]:
    """The graph as the dataset stores it (``static/...``): edges, weights, node features,
    and the assignment of every level."""
    out = {"edges": dom.edges, "weights": dom.weights}
    out.update({f"node_features/{name}": v for name, v in dom.node_features.items()})
    out.update({f"levels/k{k}": np.asarray(dom.levels[k], dtype=np.int64) for k in dom.k_values})
    return out


@lru_cache(maxsize=16)
def _oa_model(task: Kuramoto, k: int) -> CoarseModel:
    g = task.graph
    return CoarseModel.build(g.w, g.omega, g.domain.assignment(k))


__all__ = ["Kuramoto", "KuramotoGraph", "build_graph", "graph_arrays"]
