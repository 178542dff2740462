"""Fine solver of the Kuramoto model on a graph, batched over independent samples.

    d(phi_i)/dt = omega_i + K sum_j w_ij sin(phi_j - phi_i),   w_ij = A_ij / sum_j A_ij.

The coupling sum is evaluated as ``cos(phi_i) (W sin phi)_i - sin(phi_i) (W cos phi)_i``:
one sparse product of W with the ``(n, 2B)`` block of cosines and sines of a batch of B
samples and O(n) trigonometric calls per right-hand side, instead of one sine per edge. ``W`` may be
anything with ``@`` (CSR matrix, dense array, or a `scipy.sparse.linalg.LinearOperator`
such as the O(n) mean field of the complete graph in the tests).

Time stepping is the Dormand-Prince 5(4) pair (the method of ROMA's data, via jax's
odeint) with local extrapolation, FSAL and the standard controller
``h <- h min(5, max(0.2, 0.9 err^-1/5))``. It is written here rather than taken from
`scipy.integrate.solve_ivp` because it steps a whole batch ``(B, n)`` with one shared step
(the sparse product is then one matrix-matrix product) and lands exactly on the output
times. ``err`` is the largest, over samples, of the RMS over nodes of the embedded error
divided by ``atol + rtol |y|`` (Hairer's norm per sample, the worst sample decides).
Phases are wrapped to ``[-pi, pi)`` after every accepted step (the right-hand side is
2 pi-periodic, so this is exact) which keeps ``rtol |phi|`` from growing with t.

Defaults ``RTOL = ATOL = 1e-8``: ROMA samples every ``SAMPLE_DT = 5e-3``, shorter than the
step the tolerance allows at K ~ 2, so the tight tolerance costs nothing there (one step
per interval; the result then agrees with rtol = atol = 1e-12 to ~1e-14), and the
one-interval change of the observables (~5e-3 relative, docs/kuramoto.md) is far above
the solver error. On free-running steps the global change from tightening the tolerance
stays below it in the controller's RMS norm; the worst node moves ~35x more (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

RTOL = 1e-8
ATOL = 1e-8
SAMPLE_DT = 5e-3  # ROMA's sampling interval (appendix B.1)

# Dormand & Prince (1980), RK5(4)7M: nodes, stage matrix, 5th-order weights and the
# difference between the 5th- and 4th-order weights (the error estimate)
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)


@dataclass
class StepStats:
    accepted: int = 0
    rejected: int = 0
    rhs_calls: int = 0


def _norm(x: np.ndarray) -> np.ndarray:
    """RMS over every axis but the first (the batch)."""
    return np.sqrt(np.mean(np.abs(x.reshape(len(x), -1)) ** 2, axis=1))


def dopri5(
    f: Callable[[float, np.ndarray], np.ndarray],
    y0: np.ndarray,
    times: np.ndarray,
    rtol: float = RTOL,
    atol: float = ATOL,
    wrap: Callable[[np.ndarray], np.ndarray] | None = None,
    max_steps: int = 1_000_000,
) -> tuple[np.ndarray, StepStats]:
    """Integrate ``dy/dt = f(t, y)`` for a batch ``y0 (B, ...)`` (real or complex) from
    ``times[0]``; returns ``(y at every time (T, B, ...), StepStats)``.

    ``times`` must increase; ``wrap`` (optional) maps an accepted state to an equivalent one.
    """
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 1 or np.any(np.diff(times) <= 0):
        raise ValueError("times must be a 1D, strictly increasing array")
    if rtol <= 0 or atol <= 0:
        raise ValueError(f"rtol and atol must be positive, got {rtol}, {atol}")
    y = np.array(y0, dtype=np.result_type(y0, np.float64))
    out = np.empty((len(times), *y.shape), dtype=y.dtype)
    out[0] = y
    stats = StepStats()
    t = float(times[0])
    k1 = f(t, y)
    stats.rhs_calls += 1
    # initial step (Hairer, Norsett & Wanner I, II.4): a local error of ~0.01 in the norm
    scale = atol + rtol * np.abs(y)
    d0, d1 = _norm(y / scale).max(), _norm(k1 / scale).max()
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    d2 = _norm((f(t + h0, y + h0 * k1) - k1) / scale).max() / h0
    stats.rhs_calls += 1
    big = max(d1, d2)
    h = min(100 * h0, (0.01 / big) ** 0.2 if big > 1e-15 else max(1e-6, 1e-3 * h0))
    for i, t_out in enumerate(times[1:], start=1):
        while t < t_out:
            if stats.accepted + stats.rejected >= max_steps:
                raise RuntimeError(f"dopri5: more than max_steps={max_steps} steps before t={t_out}")
            step = min(h, t_out - t)
            last = step == t_out - t
            ks = [k1]
            for s in range(1, 6):
                ys = y + step * sum(a * k for a, k in zip(_A[s], ks))
                ks.append(f(t + _C[s] * step, ys))
            y_new = y + step * sum(b * k for b, k in zip(_B, ks) if b)
            k7 = f(t + step, y_new)
            stats.rhs_calls += 6
            err_vec = step * sum(e * k for e, k in zip(_E, [*ks, k7]) if e)
            err = float((_norm(err_vec / (atol + rtol * np.maximum(np.abs(y), np.abs(y_new))))).max())
            factor = 5.0 if err == 0 else min(5.0, max(0.2, 0.9 * err**-0.2))
            if err <= 1.0:
                t = float(t_out) if last else t + step
                y, k1 = (wrap(y_new) if wrap is not None else y_new), k7
                stats.accepted += 1
                # after a step clipped to hit t_out, keep the larger proposal: a tiny
                # remainder step must not shrink the next one
                h = max(h, step * factor) if last and step < h else step * factor
            else:
                h = step * factor
                stats.rejected += 1
        out[i] = y
    return out, stats


def wrap_phase(phi: np.ndarray) -> np.ndarray:
    """Phases mapped to ``[-pi, pi)``."""
    return np.remainder(phi + np.pi, 2 * np.pi) - np.pi


def kuramoto_rhs(phi: np.ndarray, omega: np.ndarray, coupling: Any, w: Any) -> np.ndarray:
    """``d(phi)/dt`` for a batch ``phi (B, n)``; ``omega (n,)`` or ``(B, n)``; ``coupling``
    a scalar K or one K per sample ``(B,)``; ``w`` the coupling matrix (module docstring)."""
    c, s = np.cos(phi), np.sin(phi)
    ws = np.asarray(w @ np.concatenate([c, s]).T).T  # (2B, n): W cos, W sin
    wc, wsn = ws[: len(phi)], ws[len(phi) :]
    k = np.asarray(coupling, dtype=np.float64).reshape(-1, 1) if np.ndim(coupling) else coupling
    return omega + k * (c * wsn - s * wc)


def integrate(
    phi0: np.ndarray,
    omega: np.ndarray,
    coupling: Any,
    w: Any,
    times: np.ndarray,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> tuple[np.ndarray, StepStats]:
    """Phases ``(T, B, n)`` (wrapped to [-pi, pi)) at ``times`` from ``phi0 (B, n)`` at
    ``times[0]``; a 1D ``phi0`` is one sample (``B = 1``)."""
    phi0 = np.atleast_2d(np.asarray(phi0, dtype=np.float64))
    n = w.shape[0]
    if w.shape != (n, n) or phi0.shape[-1] != n:
        raise ValueError(f"phi0 has {phi0.shape[-1]} nodes, the coupling matrix is {w.shape}")
    omega = np.asarray(omega, dtype=np.float64)
    return dopri5(lambda t, y: kuramoto_rhs(y, omega, coupling, w), wrap_phase(phi0), times, rtol, atol, wrap_phase)


def observables(phi: np.ndarray) -> np.ndarray:
    """The per-node observable ``(cos phi, sin phi)``: ``(..., n) -> (..., 2, n)``."""
    return np.stack([np.cos(phi), np.sin(phi)], axis=-2)


def order_parameter(phi: np.ndarray) -> np.ndarray:
    """Global order parameter ``r = |mean_j exp(i phi_j)|`` over the last axis."""
    return np.abs(np.exp(1j * phi).mean(axis=-1))


def natural_frequencies(n: int, samples: int = 1, seed: int = 0) -> np.ndarray:
    """Frequencies ``omega ~ N(0, 1)``, ``(samples, n)`` (ROMA does not state its law; the
    standard normal gives the mean-field threshold ``K_MF`` below)."""
    return np.random.default_rng(seed).standard_normal((samples, n))


# Kuramoto's threshold 2 / (pi g(0)) for g = N(0, 1). For w_ij = A_ij / k_i every node feels
# K times a degree-weighted mean field in the annealed-network approximation, so the same
# threshold holds there; finite sparse graphs sit above it (measured: docs/kuramoto.md).
K_MF = 2.0 * np.sqrt(2.0 * np.pi) / np.pi  # 1.596


@dataclass(frozen=True)
class CouplingSweep:
    """Stationary order parameter against K: ``r[k]`` the time- and sample-mean of r after
    the transient, ``chi[k] = n var_t(r)`` (mean over samples) its susceptibility."""

    couplings: np.ndarray
    r: np.ndarray
    chi: np.ndarray
    n: int

    def critical_coupling(self, r_min: float = 0.15, r_max: float = 0.6) -> tuple[float, float]:
        """Two estimates of K_c: the peak of ``chi``, and the root of a straight-line fit of
        ``r^2`` against K over the points with ``r_min < r < r_max`` (r ~ sqrt(K - K_c)
        just above a mean-field transition). ``r_min`` must clear the incoherent floor:
        r up to 0.12 was measured below the transition at n ~ 5e3-2e4 (hub-centred local
        locking, not only the 1/sqrt(n) noise). NaN if fewer than 2 such points."""
        peak = float(self.couplings[np.argmax(self.chi)])
        sel = (self.r > r_min) & (self.r < r_max)
        if sel.sum() < 2:
            return peak, float("nan")
        slope, icept = np.polyfit(self.couplings[sel], self.r[sel] ** 2, 1)
        return peak, float(-icept / slope)


def coupling_sweep(
    w: Any,
    couplings: np.ndarray,
    t_transient: float = 100.0,
    t_average: float = 100.0,
    dt_average: float = 1.0,
    samples: int = 1,
    seed: int = 0,
    rtol: float = 1e-6,
    atol: float = 1e-6,
) -> CouplingSweep:
    """r_infinity against K on one graph: every (K, sample) pair is one member of a single
    batch (one sparse product per stage for all of them); each sample has its own
    frequencies and uniform random initial phases, shared across K (common random numbers,
    so the curve is smooth in K). Looser default tolerances than the data: r is averaged."""
    couplings = np.asarray(couplings, dtype=np.float64)
    n = w.shape[0]
    rng = np.random.default_rng(seed)
    omega = np.tile(rng.standard_normal((samples, n)), (len(couplings), 1))
    phi0 = np.tile(rng.uniform(-np.pi, np.pi, (samples, n)), (len(couplings), 1))
    k = np.repeat(couplings, samples)
    times = np.r_[0.0, t_transient + np.arange(0.0, t_average + 1e-9, dt_average)]
    phi, _ = integrate(phi0, omega, k, w, times, rtol, atol)
    r = order_parameter(phi[1:]).reshape(-1, len(couplings), samples)  # (T, K, samples)
    return CouplingSweep(couplings, r.mean(axis=(0, 2)), n * r.var(axis=0).mean(axis=1), n)
