"""Pseudo-spectral solver of 2D incompressible Navier-Stokes in vorticity form.

    d(omega)/dt + u . grad(omega) = nu Lap(omega) - alpha omega + f,   -Lap psi = omega,
    u = (d psi/dy, -d psi/dx),   on the periodic square [0, 2 pi)^2.

Advection in Basdevant's form, u . grad(omega) = (d_xx - d_yy)(u v) + d_xy(v^2 - u^2),
costs 2 inverse + 2 forward real FFTs per right-hand side, 16 per RK4 step. Products are
de-aliased by the 2/3 rule. Viscosity and drag are integrated exactly (integrating-factor
RK4, `tasks.numerics.spectral.lawson_rk4`), so the step is set by the advective CFL number only.
An optional Smagorinsky eddy viscosity, div((c_s Delta)^2 |S| grad omega), turns the
same solver into an LES for coarse grids.

Two execution paths share the stage algebra: array expressions (numpy or torch, CPU or
GPU) and, on CPU with numba installed, fused kernels writing into pyFFTW's aligned
buffers (`tasks.turbulence_kernels`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tasks.numerics.spectral import FFT2, PeriodicGrid, lawson_factors, lawson_rk4, make_fft2, poisson_hat, rfft_weights

FFT_PER_STEP = 16  # real 2D FFTs per RK4 step (4 per stage), Basdevant form


class VorticitySolver:
    """Batched solver on an ``n x n`` grid; the state is the de-aliased spectrum of
    omega, ``(B, n, n // 2 + 1)`` complex128 (numpy) or a torch tensor on ``device``.

    ``backend``: "fftw" (pyFFTW, scipy fallback), "scipy" or "torch"; ``threads`` sets
    FFT workers (CPU). ``fused``: use the numba kernels (numpy backends only; ``None``
    = when available). ``smagorinsky``: c_s of the eddy viscosity (0 = DNS).
    """

    def __init__(
        self,
        n: int,
        nu: float,
        alpha: float = 0.0,
        forcing: np.ndarray | None = None,
        *,
        backend: str = "fftw",
        threads: int = 1,
        device: str = "cpu",
        smagorinsky: float = 0.0,
        fused: bool | None = None,
        planner: str = "FFTW_ESTIMATE",
        dealias: str = "truncate",
    ) -> None:
        self.grid = PeriodicGrid.square(n)
        self.n, self.nu, self.alpha, self.cs = n, float(nu), float(alpha), float(smagorinsky)
        self.torch = backend == "torch"
        self.device = device
        self.fft: FFT2 = make_fft2(backend, (n, n), threads, **({"planner": planner} if backend == "fftw" else {}))
        ky, kx = self.grid.k()
        if dealias not in ("truncate", "pad"):
            raise ValueError(f"dealias must be 'truncate' or 'pad', got {dealias!r}")
        self.pad = None
        if dealias == "truncate":
            mask = self.grid.dealias_mask().astype(float)
        else:  # 3/2-rule zero padding keeps every mode but the Nyquist ones
            m = 2 * ((3 * n + 3) // 4)  # even, >= 3n/2
            self.pad = make_fft2(backend if backend != "fftw" else "scipy", (m, m), threads)
            keep_y = np.abs(np.fft.fftfreq(n, 1.0 / n)) < n / 2
            keep_x = np.fft.rfftfreq(n, 1.0 / n) < n / 2
            mask = (keep_y[:, None] & keep_x[None, :]).astype(float)
        inv_lap = self.grid.inv_laplacian()
        self._ops = {
            "my": ky * inv_lap * np.ones_like(kx),  # u_hat = i my w_hat
            "mx": -kx * inv_lap * np.ones_like(ky),  # v_hat = i mx w_hat
            "a": -(ky**2 - kx**2) * mask,  # -(d_xx - d_yy) of the product u v
            "b": (kx * ky) * mask,  # -d_xy of v^2 - u^2
            "mask": mask * np.ones_like(kx),
            "ky": ky * np.ones_like(kx),
            "kx": kx * np.ones_like(ky),
        }
        self.lin = self.nu * self.grid.k2() + self.alpha
        f = np.zeros((n, n)) if forcing is None else np.asarray(forcing, dtype=float)
        self._ops["f"] = np.fft.rfft2(f) * mask
        self.fused = False
        if not self.torch:
            from tasks.turbulence import kernels as tk

            want = tk.available() and self.cs == 0.0 and self.fft.name == "fftw" and self.pad is None
            self.fused = want if fused is None else (fused and want)
        self._t = {name: self._arr(v) for name, v in self._ops.items()}
        self._factors: dict[float, tuple[Any, Any]] = {}

    # -- conversions ------------------------------------------------------------------
    def _arr(self, a: np.ndarray) -> Any:
        if not self.torch:
            return a
        import torch

        return torch.as_tensor(a, device=self.device)

    def to_spectral(self, omega: Any) -> Any:
        """Physical ``(B, n, n)`` omega -> de-aliased spectrum (same array library)."""
        if self.torch:
            import torch

            omega = torch.as_tensor(omega, dtype=torch.float64, device=self.device)
        else:
            omega = np.asarray(omega, dtype=np.float64)
        return self.fft.rfft2(omega) * self._t["mask"]

    def to_physical(self, w: Any) -> Any:
        return self.fft.irfft2(w)

    def velocity(self, w: Any) -> tuple[Any, Any]:
        """Physical ``(u, v)`` of the spectral state."""
        uv = self.fft.irfft2(self._stack(1j * self._t["my"] * w, 1j * self._t["mx"] * w))
        return uv[0], uv[1]

    def _stack(self, *xs: Any) -> Any:
        if self.torch:
            import torch

            return torch.stack(xs)
        return np.stack(xs)

    # -- right-hand side ----------------------------------------------------------------
    def rhs(self, w: Any) -> Any:
        """Spectral ``-u.grad(omega) + f`` (+ eddy viscosity) of the spectral state ``w``."""
        t = self._t
        if self.pad is None:
            u, v = self.velocity(w)
            pq = self.fft.rfft2(self._stack(u * v, v * v - u * u))
        else:
            pq = self._padded_products(w)
        out = t["a"] * pq[0] + t["b"] * pq[1] + t["f"]
        if self.cs > 0.0:
            out = out + self._eddy(w)
        return out

    def _padded_products(self, w: Any) -> Any:
        """Spectra of ``u v`` and ``v^2 - u^2`` computed on the 3/2-padded grid (exact for
        all retained modes, no aliasing)."""
        n, m = self.n, self.pad.shape[0]
        p = (n - 1) // 2 + 1  # modes 0..p-1 and -(p-1)..-1 along y; 0..p-1 along x
        vel = self._stack(1j * self._t["my"] * w, 1j * self._t["mx"] * w)
        shape = (2, *w.shape[:-2], m, m // 2 + 1)
        big = vel.new_zeros(shape) if self.torch else np.zeros(shape, complex)
        big[..., :p, :p] = vel[..., :p, :p]
        big[..., m - p + 1:, :p] = vel[..., n - p + 1:, :p]
        uv = self.pad.irfft2(big) * (m / n) ** 2
        u, v = uv[0], uv[1]
        pq = self.pad.rfft2(self._stack(u * v, v * v - u * u)) * (n / m) ** 2
        out = vel.new_zeros(vel.shape) if self.torch else np.zeros(vel.shape, complex)
        out[..., :p, :p] = pq[..., :p, :p]
        out[..., n - p + 1:, :p] = pq[..., m - p + 1:, :p]
        return out

    def _eddy(self, w: Any) -> Any:
        """Spectral ``div(nu_t grad omega)`` with ``nu_t = (c_s h)^2 |S|``,
        ``|S|^2 = 4 u_x^2 + (u_y + v_x)^2`` (incompressible 2D strain); a model term,
        its products are not de-aliased."""
        t, h = self._t, self.grid.dx
        psi = poisson_hat(w, self.grid)
        kx, ky = t["kx"], t["ky"]
        # u_x = psi_xy, u_y + v_x = psi_yy - psi_xx
        g = self.fft.irfft2(self._stack(-kx * ky * psi, (kx * kx - ky * ky) * psi, 1j * kx * w, 1j * ky * w))
        if self.torch:  # a finite gradient at zero strain (the differentiable LES)
            from tasks.numerics.autograd import safe_sqrt

            s = safe_sqrt(4.0 * g[0] ** 2 + g[1] ** 2)
        else:
            s = (4.0 * g[0] ** 2 + g[1] ** 2) ** 0.5
        nut = (self.cs * h) ** 2 * s
        fl = self.fft.rfft2(self._stack(nut * g[2], nut * g[3]))
        return (1j * kx * fl[0] + 1j * ky * fl[1]) * t["mask"]

    # -- time stepping ------------------------------------------------------------------
    def cfl_rate(self, w: Any) -> np.ndarray:
        """Per-sample ``max(|u|/dx + |v|/dy)``: the CFL number per unit time step."""
        u, v = self.velocity(w)
        r = abs(u) / self.grid.dx + abs(v) / self.grid.dy
        r = r.reshape(r.shape[0], -1).max(1)
        if self.torch:
            r = r.values.detach().cpu().numpy()
        return np.asarray(r, dtype=float)

    def factors(self, dt: float) -> tuple[Any, Any]:
        if dt not in self._factors:
            if len(self._factors) > 8:
                self._factors.clear()
            e2, e1 = lawson_factors(self.lin, dt)
            self._factors[dt] = (self._arr(e2), self._arr(e1))
        return self._factors[dt]

    def step(self, w: Any, dt: float) -> Any:
        """One integrating-factor RK4 step of size ``dt``."""
        return self.steps(w, dt, 1)

    def steps(self, w: Any, dt: float, nsteps: int) -> Any:
        """``nsteps`` integrating-factor RK4 steps of size ``dt``."""
        e2, e1 = self.factors(dt)
        if self.fused:
            from tasks.turbulence import kernels as tk

            return tk.fused_advance(self, w, dt, nsteps, e2)
        for _ in range(nsteps):
            w = lawson_rk4(w, self.rhs, e2, e1, dt)
        return w

    def advance(self, w: Any, duration: float, cfl: float) -> tuple[Any, int]:
        """Advance by ``duration`` in equal steps, the largest with CFL number <= ``cfl``
        at the start (batch maximum); returns the state and the number of steps. A
        negative ``duration`` integrates backwards (used by the turbulence residual)."""
        rate = float(self.cfl_rate(w).max())
        nsteps = max(1, math.ceil(abs(duration) * rate / cfl - 1e-9))
        return self.steps(w, duration / nsteps, nsteps), nsteps


def kolmogorov_forcing(n: int, amplitude: float, kf: int) -> np.ndarray:
    """Vorticity forcing ``-F k_f cos(k_f y)`` = curl of the body force ``F sin(k_f y) e_x``,
    sampled at the cell centres of an ``n x n`` grid on ``[0, 2 pi)^2`` (zero where the
    grid cannot represent ``k_f``)."""
    y, _ = PeriodicGrid.square(n).coords()
    if 2 * kf >= n:  # not representable: sampling would alias it onto a large scale
        return np.zeros((n, n))
    return np.broadcast_to(-amplitude * kf * np.cos(kf * y), (n, n)).copy()


def energy_enstrophy(omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean kinetic energy ``<|u|^2>/2`` and enstrophy ``<omega^2>/2`` per sample of
    physical ``(..., n, n)`` omega on ``[0, 2 pi)^2`` (spectrally exact)."""
    n = omega.shape[-1]
    grid = PeriodicGrid.square(n)
    wh = np.fft.rfft2(omega) / (n * n)
    p = np.abs(wh) ** 2 * rfft_weights(n)
    z = 0.5 * p.sum((-2, -1))
    e = 0.5 * (p * grid.inv_laplacian()).sum((-2, -1))
    return e, z
