"""Fused CPU kernels for `VorticitySolver` (numba + pyFFTW buffers).

One RK4 stage of the Basdevant-form vorticity equation is: velocity spectra -> 2 inverse
FFTs -> products ``u v, v^2 - u^2`` -> 2 forward FFTs -> right-hand side and RK4 update.
Array expressions spend as long in ~12 separate memory passes as in the FFTs; here each
stage is two loops (`_products`, `_combine`) that read and write the FFT buffers in
place, so the step costs little more than its 16 FFTs (see
``benchmarks/bench_turbulence_step.py``).

The kernels are single-threaded on purpose: the task runs one solver per thread on
independent trajectories (kernels are ``nogil`` and FFTW releases the GIL), and numba's
OpenMP layer busy-waits between parallel regions, starving other threads. Optional:
`available()` is False without numba or pyFFTW, and the solver then uses array
expressions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks.numerics.spectral import dealias_cutoff

try:  # optional dependencies of the fast CPU path
    import numba
    import pyfftw  # noqa: F401
except ImportError:  # pragma: no cover - exercised only without the extras
    numba = None


def available() -> bool:
    return numba is not None


if numba is not None:

    @numba.njit(cache=True, fastmath=True, nogil=True, inline="always")
    def _kept(j: int, ny: int, kmax: int) -> bool:
        """Row ``j`` of an ``fftfreq`` axis holds a mode ``|m| <= kmax``."""
        return j <= kmax or j >= ny - kmax

    @numba.njit(cache=True, fastmath=True, nogil=True)
    def _velocity(w: np.ndarray, ky: np.ndarray, kx: np.ndarray, kmax: int, vh: np.ndarray) -> None:
        """``vh[0] = i ky/|k|^2 w`` (u), ``vh[1] = -i kx/|k|^2 w`` (v); zero outside the
        2/3 band ``|m| <= kmax``."""
        nb, ny, mx = w.shape
        for b in range(nb):
            for j in range(ny):
                for i in range(mx):
                    if not _kept(j, ny, kmax) or i > kmax:
                        vh[0, b, j, i] = 0j
                        vh[1, b, j, i] = 0j
                        continue
                    k2 = ky[j] * ky[j] + kx[i] * kx[i]
                    inv = 1.0 / k2 if k2 > 0.0 else 0.0
                    z = w[b, j, i]
                    iz = complex(-z.imag, z.real)
                    vh[0, b, j, i] = iz * (ky[j] * inv)
                    vh[1, b, j, i] = iz * (-kx[i] * inv)

    @numba.njit(cache=True, fastmath=True, nogil=True)
    def _products(uv: np.ndarray, pq: np.ndarray, scale: float) -> None:
        """``pq[0] = s u v``, ``pq[1] = s (v^2 - u^2)`` (Basdevant's two products); ``s``
        folds in the 1/(ny nx)^2 of the two unnormalised inverse transforms."""
        u = uv[0].ravel()
        v = uv[1].ravel()
        p = pq[0].ravel()
        q = pq[1].ravel()
        for i in range(u.size):
            p[i] = scale * u[i] * v[i]
            q[i] = scale * (v[i] - u[i]) * (v[i] + u[i])

    @numba.njit(cache=True, fastmath=True, nogil=True)
    def _combine(
        stage: int, pqh: np.ndarray, w: np.ndarray, acc: np.ndarray, out: np.ndarray,
        f: np.ndarray, e2: np.ndarray, ky: np.ndarray, kx: np.ndarray, kmax: int, dt: float, vh: np.ndarray,
    ) -> None:
        """Right-hand side ``nl = (kx^2 - ky^2) P + kx ky Q + f`` on the 2/3 band, the
        Lawson RK4 update of ``acc`` for ``stage`` 1..4, and the next stage's velocity
        spectra (zero outside the band: the c2r transform destroys its input). Stage 4
        writes the new state into ``out`` (whose modes outside the band must be zero)
        and its velocity spectra into ``vh``. ``e2 = exp(-lin dt/2)``; ``exp(-lin dt) =
        e2^2`` exactly as in `lawson_factors`. Outside the band every term is zero, so
        the loop only clears ``vh`` there (56% of the modes)."""
        nb, ny, mx = w.shape
        h6, h3, h2 = dt / 6.0, dt / 3.0, dt / 2.0
        for b in range(nb):
            for j in range(ny):
                row = _kept(j, ny, kmax)
                for i in range(mx):
                    if not row or i > kmax:
                        vh[0, b, j, i] = 0j
                        vh[1, b, j, i] = 0j
                        continue
                    kyj, kxi = ky[j], kx[i]
                    nl = (kxi * kxi - kyj * kyj) * pqh[0, b, j, i] + (kxi * kyj) * pqh[1, b, j, i] + f[j, i]
                    wv, a2 = w[b, j, i], e2[j, i]
                    if stage == 1:
                        acc[b, j, i] = a2 * a2 * (wv + h6 * nl)
                        y = a2 * (wv + h2 * nl)
                    elif stage == 2:
                        acc[b, j, i] += h3 * a2 * nl
                        y = a2 * wv + h2 * nl
                    elif stage == 3:
                        acc[b, j, i] += h3 * a2 * nl
                        y = a2 * a2 * wv + dt * a2 * nl
                    else:
                        y = acc[b, j, i] + h6 * nl
                        out[b, j, i] = y
                    k2 = kyj * kyj + kxi * kxi
                    inv = 1.0 / k2 if k2 > 0.0 else 0.0
                    iy = complex(-y.imag, y.real)
                    vh[0, b, j, i] = iy * (kyj * inv)
                    vh[1, b, j, i] = iy * (-kxi * inv)


class FusedStepper:
    """Buffers and FFTW plans for fused steps of one solver and batch size."""

    def __init__(self, solver: Any, batch: int) -> None:
        fft = solver.fft
        # private plans: their buffers carry state between stages
        self.inv = fft.plan("c2r", (2, batch), tag="fused")
        self.fwd = fft.plan("r2c", (2, batch), tag="fused")
        ky, kx = solver.grid.k()
        self.ky, self.kx = np.ascontiguousarray(ky[:, 0]), np.ascontiguousarray(kx[0])
        g = solver.grid
        if g.ny != g.nx:
            raise ValueError("fused kernels assume a square grid")
        self.kmax = dealias_cutoff(g.nx)  # 2/3 band in mode indices
        self.scale = 1.0 / float(g.ny * g.nx) ** 2
        self.f = np.ascontiguousarray(solver._ops["f"])
        self.mask = solver._ops["mask"]
        shape = (batch, *solver.grid.spectral_shape)
        self.acc = np.empty(shape, complex)

    def _step(self, w: np.ndarray, out: np.ndarray, dt: float, e2: np.ndarray) -> None:
        """One step from ``w`` into ``out``; needs ``w``'s velocity spectra in the inverse
        plan's input buffer and leaves ``out``'s there."""
        vh = self.inv.input_array
        for stage in (1, 2, 3, 4):
            self.inv.execute()  # c2r destroys its input; _combine rewrites it next
            _products(self.inv.output_array, self.fwd.input_array, self.scale)
            self.fwd.execute()
            _combine(stage, self.fwd.output_array, w, self.acc, out, self.f, e2, self.ky, self.kx, self.kmax, dt, vh)

    def advance(self, w: np.ndarray, dt: float, nsteps: int, e2: np.ndarray) -> np.ndarray:
        """``nsteps`` steps of size ``dt``, ping-ponging between two state buffers (a fresh
        array per step costs page faults comparable to a pointwise pass)."""
        cur = np.ascontiguousarray(w * self.mask, dtype=complex)  # a copy, zero outside the band
        nxt = np.zeros_like(cur)  # _combine writes only the 2/3 band
        _velocity(cur, self.ky, self.kx, self.kmax, self.inv.input_array)
        for _ in range(nsteps):
            self._step(cur, nxt, dt, e2)
            cur, nxt = nxt, cur
        return cur


def fused_advance(solver: Any, w: np.ndarray, dt: float, nsteps: int, e2: np.ndarray) -> np.ndarray:
    """``nsteps`` fused Lawson-RK4 steps of ``solver`` (steppers cached per batch size)."""
    cache = solver.__dict__.setdefault("_fused", {})
    b = w.shape[0]
    if b not in cache:
        cache[b] = FusedStepper(solver, b)
    return cache[b].advance(w, dt, nsteps, e2)
