"""Classical coarse baseline: an Ott-Antonsen mean-field model per super-node.

The coarse state is the local complex order parameter of every super-node a,
``z_a = mean_{i in a} exp(i phi_i)`` (`restrict_graph` of the observable (cos, sin)).

Derivation. Write the fine equation as ``d(phi_i)/dt = omega_i + K Im(H_i e^{-i phi_i})``
with the local field ``H_i = sum_j w_ij e^{i phi_j}``. Two closure assumptions:

1. every member of a sees the same field, the members' mean
   ``H_a = (1/n_a) sum_{i in a} sum_b sum_{j in b} w_ij z_b = sum_b Wc_ab z_b``: the phases
   inside super-node b are replaced by their mean z_b (the coupled neighbours of i are
   interchangeable within b). ``Wc = diag(1/n_a) P^T W P`` is row-stochastic like W;
2. the members form a continuum with a Lorentzian frequency density (centre ``nu_a``,
   half-width ``delta_a``) and a phase density on the Ott-Antonsen manifold.

Then (Ott & Antonsen, Chaos 18, 037113, 2008; for a population driven by a common field)

    dz_a/dt = (i nu_a - delta_a) z_a + (K/2) (H_a - conj(H_a) z_a^2),   H_a = sum_b Wc_ab z_b,

one complex ODE per super-node, O(coarse edges) per right-hand side (one sparse product).
With one node per super-node and ``delta = 0`` it is the fine model exactly (|z| = 1, and
``d(e^{i phi})/dt`` is the bracket above); with one super-node on the complete graph it
is Kuramoto's all-to-all model, ``r^2 -> 1 - 2 delta / K`` (both are tested).

The members' frequencies are Gaussian, not Lorentzian, and few (4^level): `lorentzian_fit`
takes ``nu_a`` the members' mean and ``delta_a = sqrt(2/pi) std_a``, the Lorentzian with
the same density at its centre as the Gaussian of that spread, so that the all-to-all
threshold ``K_c = 2 delta = 2 / (pi g(0))`` is the Gaussian one. Integrated with the same
batched Dormand-Prince stepper as the fine model (`solver.dopri5`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from tasks.kuramoto.graphs import restrict_graph
from tasks.kuramoto.solver import ATOL, RTOL, StepStats, dopri5


def membership(members: np.ndarray, n_super: int | None = None) -> sp.csr_matrix:
    """The 0/1 matrix ``P (n, n_super)`` with ``P_ia = 1`` iff node i is in super-node a."""
    members = np.asarray(members)
    nc = int(members.max()) + 1 if n_super is None else n_super
    return sp.csr_matrix((np.ones(len(members)), (np.arange(len(members)), members)), shape=(len(members), nc))


def coarse_coupling(w: sp.spmatrix, members: np.ndarray) -> sp.csr_matrix:
    """``Wc = diag(1/n_a) P^T W P``: the members' mean coupling into each super-node."""
    p = membership(members)
    sizes = np.asarray(p.sum(axis=0)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / sizes) @ (p.T @ sp.csr_matrix(w) @ p))


def lorentzian_fit(omega: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(nu, delta)`` per super-node from the members' frequencies ``omega (..., n)``:
    the mean, and ``sqrt(2/pi)`` times the (population) standard deviation."""
    nu = restrict_graph(omega, members)
    var = np.maximum(restrict_graph(omega**2, members) - nu**2, 0.0)
    return nu, np.sqrt(2.0 / np.pi * var)


def oa_rhs(z: np.ndarray, nu: np.ndarray, delta: np.ndarray, coupling: Any, wc: Any) -> np.ndarray:
    """``dz/dt`` for a batch ``z (B, n_super)`` complex; ``coupling`` K or ``(B,)``."""
    h = np.asarray(wc @ z.T).T
    k = np.asarray(coupling, dtype=np.float64).reshape(-1, 1) if np.ndim(coupling) else coupling
    return (1j * nu - delta) * z + 0.5 * k * (h - np.conj(h) * z * z)


@dataclass(frozen=True)
class CoarseModel:
    """The Ott-Antonsen model of one partition level for given fine frequencies."""

    members: np.ndarray
    wc: sp.csr_matrix
    nu: np.ndarray
    delta: np.ndarray

    @classmethod
    def build(cls, w: sp.spmatrix, omega: np.ndarray, members: np.ndarray) -> CoarseModel:
        """From the fine coupling matrix W, frequencies ``(n,)`` or ``(B, n)`` and the level's
        ``members``."""
        if omega.shape[-1] != len(members) or w.shape[0] != len(members):
            raise ValueError(f"omega ({omega.shape[-1]}), W ({w.shape[0]}) and members ({len(members)}) disagree")
        nu, delta = lorentzian_fit(omega, members)
        return cls(np.asarray(members), coarse_coupling(w, members), nu, delta)

    def restrict(self, phi: np.ndarray) -> np.ndarray:
        """Fine phases ``(..., n)`` -> complex local order parameters ``(..., n_super)``."""
        return restrict_graph(np.cos(phi), self.members) + 1j * restrict_graph(np.sin(phi), self.members)

    def advance(
        self, z0: np.ndarray, coupling: Any, times: np.ndarray, rtol: float = RTOL, atol: float = ATOL
    ) -> tuple[np.ndarray, StepStats]:
        """``z (T, B, n_super)`` at ``times`` from ``z0 (B, n_super)`` at ``times[0]``."""
        z0 = np.atleast_2d(np.asarray(z0, dtype=np.complex128))
        if z0.shape[-1] != self.wc.shape[0]:
            raise ValueError(f"z0 has {z0.shape[-1]} super-nodes, the level has {self.wc.shape[0]}")
        return dopri5(lambda t, z: oa_rhs(z, self.nu, self.delta, coupling, self.wc), z0, times, rtol, atol)
