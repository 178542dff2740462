"""Solver for 2D Rayleigh-Benard convection: Fourier (or 2nd-order FD) in x, staggered
2nd-order finite differences in z, explicit RK4 with an exact discrete projection.

Boussinesq equations in free-fall units (length: layer depth d; velocity
``sqrt(g alpha Delta d)``; time ``d / velocity``; temperature ``(T - T_top) / Delta``)::

    du/dt + (u.grad) u = -grad p + sqrt(Pr/Ra) lap u + T e_z,     div u = 0,
    dT/dt + (u.grad) T = 1/sqrt(Ra Pr) lap T,

on ``0 <= x < aspect`` (periodic) x ``0 < z < 1``; plates ``T(0) = 1``, ``T(1) = 0``,
``w = 0`` and no-slip ``u = 0`` (or stress-free ``du/dz = 0``). The solver evolves the
deviation ``theta = T - (1 - z)`` (the conductive part of the buoyancy is a pressure
gradient), so its equation gains the source ``+w``.

Grid (``h x w`` cells, uniform): ``u``, ``theta``, ``p`` at cell centres
``z_j = (j + 1/2)/h``; ``w`` on the horizontal faces ``z = j/h`` (walls included, where
it is 0); all at the same ``x_i = i aspect / w`` (the origin is immaterial: periodic).
z-derivatives are the second-order staggered (MAC) differences; wall ghosts
``u_{-1} = -u_0`` (no-slip) or ``+u_0`` (stress-free) and ``theta_{-1} = -theta_0``.
Advection is in flux form with face/centre averages (the energy-conserving staggered
discretisation; skew-symmetric for ``fd2``, see `_advective_form`). In x the scheme is either
pseudo-spectral with the 2/3 dealiasing rule (``x_scheme="spectral"``, the fine solver)
or second-order central differences (``"fd2"``, the classical coarse FV solver), both
applied as multipliers on Fourier coefficients (a central difference on a periodic grid
is a circulant).

The state is kept Fourier-in-x, physical-in-z. The right-hand side is projected onto the
discretely divergence-free fields by solving the cell-centred Neumann Poisson problem
exactly (Fourier in x x DCT-II in z diagonalises it), so RK4 on the projected right-hand
side keeps ``div u = 0`` to round-off with the full order of RK4. Diffusion is explicit:
at the Rayleigh numbers and grids of the task its limit is above the advective one
(`SpectralFD.stable_dt`). An optional Smagorinsky eddy viscosity (``cs``) serves the
coarse solvers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tasks.convection.ops import Ops, make_ops

PLATES = ("no-slip", "stress-free")
X_SCHEMES = ("spectral", "fd2")


class SpectralFD:
    """The Boussinesq solver on an ``h x w`` grid for a batch of flows.

    State: complex array ``(3, B, h + 1, nk)`` of Fourier-x coefficients (columns
    ``kx = 2 pi n / aspect``, ``n < nk``) of ``u`` and ``theta`` (rows 0..h-1: the cell
    centres; row h unused, zero) and ``w`` (rows 0..h: the faces; walls zero).
    """

    def __init__(
        self,
        h: int,
        w: int,
        ra: float,
        pr: float = 1.0,
        aspect: float = 4.0,
        *,
        plates: str = "no-slip",
        x_scheme: str = "spectral",
        cs: float = 0.0,
        backend: str = "numpy",
        workers: int = 1,
        device: str = "cpu",
    ) -> None:
        if plates not in PLATES:
            raise ValueError(f"unknown plates {plates!r}; valid: {', '.join(PLATES)}")
        if x_scheme not in X_SCHEMES:
            raise ValueError(f"unknown x_scheme {x_scheme!r}; valid: {', '.join(X_SCHEMES)}")
        if h < 2 or w < 4:
            raise ValueError(f"grid {h}x{w} too small")
        self.h, self.w, self.ra, self.pr, self.aspect = h, w, float(ra), float(pr), float(aspect)
        self.plates, self.x_scheme, self.cs = plates, x_scheme, float(cs)
        self.nu, self.kappa = math.sqrt(pr / ra), 1.0 / math.sqrt(ra * pr)
        self.dx, self.dz = aspect / w, 1.0 / h
        self.ops: Ops = make_ops(backend, workers, device)
        # spectral: 2/3 rule (products of kept modes never alias onto kept modes);
        # fd2: all but the Nyquist column (a central difference annihilates it).
        self.nk = w // 3 + 1 if x_scheme == "spectral" else w // 2
        kx = 2.0 * math.pi / aspect * np.arange(self.nk)
        if x_scheme == "spectral":
            dx_sym, dxx, pxx = 1j * kx, -(kx**2), -(kx**2)
            self.kx_max = float(kx[-1])
        else:
            dx_sym = 1j * np.sin(kx * self.dx) / self.dx
            dxx = -4.0 * np.sin(0.5 * kx * self.dx) ** 2 / self.dx**2
            pxx = -(np.sin(kx * self.dx) / self.dx) ** 2  # D_x D_x: projection exact for D_x
            self.kx_max = 1.0 / self.dx
        self.kxx_max = float(-dxx.min())
        lam_z = -4.0 * np.sin(0.5 * math.pi * np.arange(h) / h) ** 2 / self.dz**2  # Neumann, DCT-II
        denom = lam_z[:, None] + pxx[None, :]
        denom[0, 0] = 1.0  # the constant pressure mode is free; its rhs is zero
        ghost_u = -1.0 if plates == "no-slip" else 1.0
        self._ghost_u = ghost_u
        xp = self.ops.asarray
        self._dx = xp(dx_sym, complex_=True)
        self._inv_lap = xp(1.0 / denom)
        self._zc = xp(((np.arange(h) + 0.5) / h)[:, None])
        # Diffusion of the centre fields (u, theta) as A c_j + B (c_{j+1} + c_{j-1}) with the
        # wall ghosts (u: ghost_u, theta: -1, Dirichlet) folded into A's end rows; w on the
        # interior faces likewise with zero walls.
        diff = np.array([self.nu, self.kappa])[:, None, None, None]
        a_c = np.broadcast_to(diff * (dxx[None, None, None, :] - 2.0 / self.dz**2), (2, 1, h, self.nk)).copy()
        ghosts = np.array([ghost_u, -1.0])[:, None, None]
        a_c[:, :, 0] += diff[:, :, 0] * ghosts / self.dz**2
        a_c[:, :, -1] += diff[:, :, 0] * ghosts / self.dz**2
        self._a_c, self._b_c = xp(a_c), xp(diff / self.dz**2)
        self._a_w, self._b_w = xp(self.nu * (dxx - 2.0 / self.dz**2)), self.nu / self.dz**2
        self._dx_dz = xp(dx_sym * self.dz, complex_=True)
        self._buffers: dict[tuple[int, ...], Any] = {}

    # -- z operators on (..., rows, nk) arrays -----------------------------------------
    def _cat(self, parts: list[Any]) -> Any:
        return self.ops.cat_rows(parts)

    def _faces_avg(self, c: Any) -> Any:
        """Centre values (h rows) -> face values (h + 1 rows), zero on the walls."""
        z = self.ops.zero_rows(c)
        return self._cat([z, 0.5 * (c[..., 1:, :] + c[..., :-1, :]), z])

    def _buffer(self, shape: tuple[int, ...], complex_: bool = False) -> Any:
        """A zero-initialised work array reused across calls (rows never written stay 0)."""
        key = (*shape, int(complex_))
        if key not in self._buffers:
            self._buffers[key] = self.ops.asarray(np.zeros(shape), complex_=complex_)
        return self._buffers[key]

    def project(self, u: Any, w: Any) -> tuple[Any, Any]:
        """Discretely divergence-free part of ``(u centres, w faces)``:
        ``u - D_x phi``, ``w - D_z phi`` with ``D.G phi = div``, walls ``w = 0``."""
        div = self._dx * u + (w[..., 1:, :] - w[..., :-1, :]) / self.dz
        phi = self.ops.idct_rows(self.ops.dct_rows(div) * self._inv_lap)
        dphi = (phi[..., 1:, :] - phi[..., :-1, :]) / self.dz
        z = self.ops.zero_rows(phi)
        return u - self._dx * phi, w - self._cat([z, dphi, z])

    def divergence(self, state: Any) -> Any:
        """Discrete divergence at the cell centres, Fourier-x coefficients ``(B, h, nk)``."""
        return self._dx * state[0, :, :-1] + (state[2, :, 1:] - state[2, :, :-1]) / self.dz

    # -- state <-> cell-centred fields ---------------------------------------------------
    def from_fields(self, fields: Any, exact: bool = False) -> Any:
        """State from cell-centred ``(B, 3, h, w)`` = (T, u, w) (w at centres).

        ``exact``: the fields come from this solver on this grid, so the face ``w`` is
        rebuilt exactly from the discrete continuity equation. Otherwise (e.g. block
        averages) the face ``w`` is the average of its two cells and the velocity is
        projected: the divergence-free field closest in L2 to the input.
        """
        f = self.ops.asarray(fields)
        theta = self.ops.rfft(f[:, 0] - (1.0 - self._zc), self.nk)
        u = self.ops.rfft(f[:, 1], self.nk)
        if exact:  # w_{j+1} = w_j - dz D_x u_j from the wall w_0 = 0
            flux = -self.dz * self._dx * u
            rows, acc = [self.ops.zero_rows(u)], self.ops.zero_rows(u)
            for j in range(self.h - 1):
                acc = acc + flux[..., j : j + 1, :]
                rows.append(acc)
            rows.append(self.ops.zero_rows(u))
            w = self._cat(rows)
        else:
            w = self._faces_avg(self.ops.rfft(f[:, 2], self.nk))
        u, w = self.project(u, w)
        z = self.ops.zero_rows(u)
        return self.ops.stack([self._cat([u, z]), self._cat([theta, z]), w])

    def fields(self, state: Any) -> Any:
        """Cell-centred ``(B, 3, h, w)`` (T, u, w), a view in the backend's array type
        (torch: differentiable; see `tasks.convection.differentiable`)."""
        phys = self.ops.irfft(state, self.w)
        t = phys[1, :, :-1] + (1.0 - self._zc)
        w_c = 0.5 * (phys[2, :, 1:] + phys[2, :, :-1])
        return self.ops.stack([t, phys[0, :, :-1], w_c]).swapaxes(0, 1)

    def to_fields(self, state: Any) -> np.ndarray:
        """Cell-centred ``(B, 3, h, w)`` float64 NumPy array (T, u, w)."""
        return self.ops.to_numpy(self.fields(state)).copy()

    def initial_state(self, batch: int, rng: np.random.Generator, amplitude: float = 0.1) -> Any:
        """Conductive profile at rest plus a random temperature perturbation of the lowest
        modes (``kx`` index < 9, vertical ``sin(m pi z)``, ``m <= 4``), rms ~ ``amplitude``."""
        nk, nm = min(9, self.nk), 4
        coef = rng.standard_normal((batch, nm, nk)) + 1j * rng.standard_normal((batch, nm, nk))
        coef[:, :, 0] = coef[:, :, 0].real
        z = (np.arange(self.h) + 0.5) / self.h
        profile = np.sin(math.pi * np.outer(z, np.arange(1, nm + 1)))  # (h, nm)
        theta = np.zeros((batch, self.h + 1, self.nk), dtype=np.complex128)
        theta[:, : self.h, :nk] = np.einsum("zm,bmk->bzk", profile, coef) * (amplitude / math.sqrt(nm * nk))
        zeros = np.zeros_like(theta)
        return self.ops.asarray(np.stack([zeros, theta, zeros]), complex_=True)

    # -- dynamics ---------------------------------------------------------------------
    def rhs(self, state: Any) -> Any:
        """Projected right-hand side ``P N(state)`` (advection, diffusion, buoyancy)."""
        ops, dz, dx, h = self.ops, self.dz, self._dx, self.h
        b = state.shape[1]
        phys = ops.irfft(state, self.w)
        c, w = phys[:2, :, :h], phys[2]  # (u, theta) at centres; w at faces
        wc = 0.5 * (w[:, 1:] + w[:, :-1])
        # Fluxes: x-flux of (u, theta) = u (u, theta); z-flux = w (u, theta)_face (times
        # dz: also the x-flux of w); z-flux of w = w_c^2. One FFT for all five; the z-fluxes
        # carry 1/dz so that their differences need no scaling.
        prods = self._buffer((5, b, h + 1, self.w))
        prods[0:2, :, :h] = c[0] * c
        prods[2:4] = (w / dz) * self._faces_avg(c)
        prods[4, :, :h] = (wc / dz) * wc
        f = ops.rfft(prods, self.nk)
        adv_c = dx * f[0:2, :, :h] + f[2:4, :, 1:] - f[2:4, :, :h]
        adv_w = self._dx_dz * f[2, :, 1:h] + f[4, :, 1:h] - f[4, :, : h - 1]
        if self.x_scheme == "fd2":  # skew-symmetric: average with the advective form
            a_c, a_w = self._advective_form(state, c, w, wc)
            adv_c, adv_w = 0.5 * (adv_c + a_c), 0.5 * (adv_w + a_w)
        cc, ws = state[:2], state[2]
        rc = self._a_c * cc[:, :, :h]
        rc += self._b_c * cc[:, :, 1:]  # row h of the state is zero
        rc[:, :, 1:] += self._b_c * cc[:, :, : h - 1]
        rc -= adv_c
        rc[1] += 0.5 * (ws[:, 1:] + ws[:, :-1])  # theta source +w
        rw = self._a_w * ws[:, 1:h] + self._b_w * (ws[:, 2:] + ws[:, : h - 1]) - adv_w
        rw += 0.5 * (cc[1, :, 1:h] + cc[1, :, : h - 1])  # buoyancy
        if self.cs > 0.0:
            eu, et, ew = self._eddy(state, phys)
            rc[0], rc[1], rw = rc[0] + eu, rc[1] + et, rw + ew
        # projection (see `project`), written into the output rows directly
        out = ops.zeros_like(state)
        out[2, :, 1:h] = rw
        div = dx * rc[0] + (out[2, :, 1:] - out[2, :, :-1]) / dz
        phi = ops.idct_rows(ops.dct_rows(div) * self._inv_lap)
        out[0, :, :h] = rc[0] - dx * phi
        out[1, :, :h] = rc[1]
        out[2, :, 1:h] -= (phi[:, 1:] - phi[:, :-1]) / dz
        return out

    def _advective_form(self, state: Any, c: Any, w: Any, wc: Any) -> tuple[Any, Any]:
        """Fourier coefficients of ``u dphi/dx + w dphi/dz`` for phi = (u, theta) at the
        centres and phi = w at the interior faces, with the staggered averages whose mean
        with the flux form is the energy-conserving skew-symmetric form (used by fd2,
        whose collocated central x-differences are unstable in flux form alone)."""
        ops, dz, h = self.ops, self.dz, self.h
        gx = ops.irfft(self._dx * state, self.w)
        zr = ops.zero_rows(c)
        dcz = self._cat([zr, (c[:, :, 1:] - c[:, :, :-1]) / dz, zr])  # faces; wall rows meet w = 0
        wdc = w * dcz
        a = self._buffer((3, c.shape[1], h + 1, self.w))
        a[0:2, :, :h] = c[0] * gx[0:2, :, :h] + 0.5 * (wdc[:, :, 1:] + wdc[:, :, :-1])
        wdw = wc * (w[:, 1:] - w[:, :-1]) / dz  # centres
        a[2, :, 1:h] = self._faces_avg(c[0])[:, 1:h] * gx[2, :, 1:h] + 0.5 * (wdw[:, 1:] + wdw[:, :-1])
        fa = ops.rfft(a, self.nk)
        return fa[0:2, :, :h], fa[2, :, 1:h]

    def _eddy(self, state: Any, phys: Any) -> tuple[Any, Any, Any]:
        """Smagorinsky terms ``div(nu_t grad f)`` for f = u, theta, w (gradient-diffusion
        form, turbulent Prandtl number 1), ``nu_t = (cs Delta)^2 |S|`` at the centres,
        ``|S| = sqrt(2 S_ij S_ij)``, ``Delta = sqrt(dx dz)``."""
        ops, dz, h = self.ops, self.dz, self.h
        gx = ops.irfft(self._dx * state, self.w)  # x-derivatives of u, theta, w
        u, th, w = phys[0, :, :h], phys[1, :, :h], phys[2]
        s11, s33 = gx[0, :, :h], (w[:, 1:] - w[:, :-1]) / dz
        g = 1.0 - self._ghost_u  # wall du/dz = g u_wall_cell / dz (2 for no-slip, 0 stress-free)
        uz_f = self._cat([g * u[:, :1] / dz, (u[:, 1:] - u[:, :-1]) / dz, -g * u[:, -1:] / dz])
        thz_f = self._cat([2.0 * th[:, :1] / dz, (th[:, 1:] - th[:, :-1]) / dz, -2.0 * th[:, -1:] / dz])
        s13 = 0.25 * ((uz_f + gx[2])[:, 1:] + (uz_f + gx[2])[:, :-1])
        nut = (self.cs**2 * self.dx * self.dz) * ops.sqrt(2.0 * (s11 * s11 + s33 * s33 + 2.0 * s13 * s13))
        nut_f = self._cat([nut[:, :1], 0.5 * (nut[:, 1:] + nut[:, :-1]), nut[:, -1:]])
        zr = ops.zero_rows(u)
        # x-fluxes (u, theta at centres; w at faces), z-fluxes (u, theta at faces; w at centres)
        fx = ops.rfft(ops.stack([self._cat([nut * s11, zr]), self._cat([nut * gx[1, :, :h], zr]), nut_f * gx[2]]),
                      self.nk)
        fz = ops.rfft(ops.stack([nut_f * uz_f, nut_f * thz_f, self._cat([nut * s33, zr])]), self.nk)
        eu = self._dx * fx[0, :, :h] + (fz[0, :, 1:] - fz[0, :, :h]) / dz
        et = self._dx * fx[1, :, :h] + (fz[1, :, 1:] - fz[1, :, :h]) / dz
        ew = self._dx * fx[2, :, 1:h] + (fz[2, :, 1:h] - fz[2, :, : h - 1]) / dz
        return eu, et, ew

    def step(self, state: Any, dt: float) -> Any:
        """One classical RK4 step of ``d state/dt = P N(state)``."""
        k1 = self.rhs(state)
        k2 = self.rhs(state + (0.5 * dt) * k1)
        k3 = self.rhs(state + (0.5 * dt) * k2)
        k4 = self.rhs(state + dt * k3)
        return state + (dt / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)

    def advance(self, state: Any, duration: float, dt: float) -> Any:
        """Integrate for ``duration`` with the largest equal steps not above ``dt``."""
        n = max(1, math.ceil(duration / dt - 1e-9))
        for _ in range(n):
            state = self.step(state, duration / n)
        return state

    # -- diagnostics ------------------------------------------------------------------
    def stable_dt(self, state: Any, cfl: float = 1.0) -> float:
        """``cfl`` times the RK4 limits: advective ``2.8 / (|u| k_x,max + |w| / dz)``
        (``cfl = 1`` is at the stability edge) and diffusive ``2.78 / (nu (k_xx,max + 4/dz^2))``."""
        phys = self.ops.irfft(state, self.w)
        adv = self.ops.amax(phys[0]) * self.kx_max + self.ops.amax(phys[2]) / self.dz
        diff = max(self.nu, self.kappa) * (self.kxx_max + 4.0 / self.dz**2)
        return cfl * min(2.8 / max(adv, 1e-12), 2.78 / diff)

    def nusselt(self, state: Any) -> dict[str, np.ndarray]:
        """Per-flow Nusselt numbers ``(B,)``: ``volume = 1 + sqrt(Ra Pr) <w theta>`` (w
        averaged to the centres) and the plates' conductive flux ``-dT/dz`` of the scheme
        (``bottom = 1 - 2 <theta_0> / dz``, ``top = 1 + 2 <theta_{h-1}> / dz``)."""
        phys = self.ops.to_numpy(self.ops.irfft(state[1:], self.w))
        th, wc = phys[0, :, :-1], 0.5 * (phys[1, :, 1:] + phys[1, :, :-1])
        vol = 1.0 + math.sqrt(self.ra * self.pr) * (wc * th).mean(axis=(-2, -1))
        mean_th = th.mean(axis=-1)
        bottom, top = 1.0 - 2.0 * mean_th[:, 0] / self.dz, 1.0 + 2.0 * mean_th[:, -1] / self.dz
        return {"volume": vol, "bottom": bottom, "top": top}


__all__ = ["SpectralFD", "PLATES", "X_SCHEMES"]
