"""Pseudo-spectral building blocks for periodic directions.

Reusable by any task with periodic axes: Fourier wavenumbers in the ``rfft`` layout,
the 2/3-rule de-aliasing mask, Parseval weights, the periodic Poisson solve, Fourier
resampling between cell-centred grids, the cell-average transfer function, real 2D FFT
back-ends (pyFFTW, scipy.fft, torch.fft; chosen explicitly, threads explicit) and the
integrating-factor (Lawson) RK4 step for a diagonal linear operator.

Conventions: fields are ``(..., ny, nx)`` with ``y`` along axis -2 and ``x`` along
axis -1 on ``[0, ly) x [0, lx)``; spectra are ``(..., ny, nx // 2 + 1)`` (``rfft2``
over the last two axes, unnormalised forward transform as in numpy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

TWO_PI = 2.0 * math.pi


def wavenumbers(n: int, length: float = TWO_PI, real: bool = False) -> np.ndarray:
    """Angular wavenumbers of an ``n``-point periodic axis of period ``length``
    (``rfftfreq`` layout if ``real``, else ``fftfreq`` layout)."""
    d = length / n
    f = np.fft.rfftfreq(n, d) if real else np.fft.fftfreq(n, d)
    return TWO_PI * f


def dealias_cutoff(n: int) -> int:
    """Largest integer mode index kept by the 2/3 rule on ``n`` points: quadratic
    products of modes ``|m| <= K`` alias only onto ``|m| > K`` when ``n >= 3K + 1``."""
    return (n - 1) // 3


@dataclass(frozen=True)
class PeriodicGrid:
    """A doubly periodic ``ny x nx`` grid on ``[0, ly) x [0, lx)`` and its spectral operators."""

    ny: int
    nx: int
    ly: float = TWO_PI
    lx: float = TWO_PI

    @classmethod
    def square(cls, n: int, length: float = TWO_PI) -> PeriodicGrid:
        return cls(n, n, length, length)

    @property
    def shape(self) -> tuple[int, int]:
        return self.ny, self.nx

    @property
    def spectral_shape(self) -> tuple[int, int]:
        return self.ny, self.nx // 2 + 1

    @property
    def dx(self) -> float:
        return self.lx / self.nx

    @property
    def dy(self) -> float:
        return self.ly / self.ny

    def k(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ky, kx)`` broadcastable to the spectral shape (float64)."""
        ky = wavenumbers(self.ny, self.ly)[:, None]
        kx = wavenumbers(self.nx, self.lx, real=True)[None, :]
        return ky, kx

    def k2(self) -> np.ndarray:
        """``|k|^2`` on the spectral grid."""
        ky, kx = self.k()
        return ky**2 + kx**2

    def inv_laplacian(self) -> np.ndarray:
        """Multiplier of ``(-Lap)^{-1}`` with the mean mode set to zero."""
        k2 = self.k2()
        out = np.zeros_like(k2)
        np.divide(1.0, k2, out=out, where=k2 > 0)
        return out

    def dealias_mask(self) -> np.ndarray:
        """Boolean 2/3-rule mask (square truncation in integer mode indices)."""
        my = np.abs(np.fft.fftfreq(self.ny, 1.0 / self.ny))[:, None]
        mx = np.fft.rfftfreq(self.nx, 1.0 / self.nx)[None, :]
        return (my <= dealias_cutoff(self.ny)) & (mx <= dealias_cutoff(self.nx))

    def kmax_dealiased(self) -> float:
        """Largest wavenumber magnitude along an axis that survives de-aliasing."""
        return min(dealias_cutoff(self.ny) * TWO_PI / self.ly, dealias_cutoff(self.nx) * TWO_PI / self.lx)

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates ``(y, x) = ((j + 1/2) h)``, broadcastable to ``(ny, nx)``;
        cell centres make the block average ``R_k`` of the fine grid land on the coarse
        grid's cell centres."""
        y = (np.arange(self.ny) + 0.5) * self.dy
        x = (np.arange(self.nx) + 0.5) * self.dx
        return y[:, None], x[None, :]


def rfft_weights(nx: int) -> np.ndarray:
    """Multiplicity of the ``rfft`` half-plane columns (conjugate modes counted twice), so
    that ``sum(w * |u_hat / N|^2) = mean(u^2)`` (Parseval)."""
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w


def poisson_hat(f_hat: Any, grid: PeriodicGrid) -> Any:
    """Spectral solution of ``-Lap psi = f`` (zero-mean ``psi``) for numpy or torch input."""
    m = grid.inv_laplacian()
    if isinstance(f_hat, np.ndarray):
        return f_hat * m
    import torch

    return f_hat * torch.as_tensor(m, device=f_hat.device)


def resample(u: np.ndarray, n: int) -> np.ndarray:
    """Fourier interpolation of cell-centred periodic fields ``(..., m, m)`` to ``n x n``.

    Samples sit at ``(j + 1/2) h``, so grids of different ``h`` have different origins;
    the half-cell phase shift is applied before the modes are copied. Modes beyond the
    smaller grid's band (and its Nyquist modes) are dropped. ``resample(resample(u, 2m),
    m) == u`` for a band-limited ``u``.
    """
    m = u.shape[-1]

    def phase(size: int) -> np.ndarray:
        ky = np.fft.fftfreq(size, 1.0 / size)[:, None]
        kx = np.fft.rfftfreq(size, 1.0 / size)[None, :]
        return np.exp(-1j * np.pi * (kx + ky) / size)  # e^{-i k h/2}, h = 2 pi / size

    c = np.fft.rfft2(u) * phase(m) / (m * m)
    p = (min(m, n) - 1) // 2 + 1  # modes 0..p-1 and -(p-1)..-1 are kept
    out = np.zeros((*u.shape[:-2], n, n // 2 + 1), complex)
    out[..., :p, :p] = c[..., :p, :p]
    out[..., n - p + 1:, :p] = c[..., m - p + 1:, :p]
    return np.fft.irfft2(out / phase(n) * (n * n), s=(n, n))


def box_transfer(n: int) -> np.ndarray:
    """Transfer function ``sinc(k_x h/2) sinc(k_y h/2)`` of the ``h x h`` cell average on
    the rfft grid of ``n`` points: the spectrum of ``R_k u`` is that of the point values
    times this (up to aliasing)."""
    my = np.fft.fftfreq(n)[:, None]  # k h / (2 pi)
    mx = np.fft.rfftfreq(n)[None, :]
    return np.sinc(my) * np.sinc(mx)  # np.sinc(x) = sin(pi x) / (pi x)


def block_transfer(m: int, k: int) -> np.ndarray:
    """Exact transfer function of ``R_k`` (the k x k block average of point values on a
    grid ``k`` times finer) for the modes of the coarse rfft grid of ``m`` points:
    ``R_k e^{i xi x} = D(xi_y) D(xi_x) e^{i xi X}`` at the coarse cell centres X, with the
    discrete box ``D(xi) = sin(xi k h / 2) / (k sin(xi h / 2))``, ``h = 2 pi / (m k)``."""
    def box(q: np.ndarray) -> np.ndarray:
        arg = np.pi * q / (m * k)  # xi h / 2
        out = np.ones_like(arg)
        nz = arg != 0
        out[nz] = np.sin(k * arg[nz]) / (k * np.sin(arg[nz]))
        return out

    return box(np.fft.fftfreq(m, 1.0 / m))[:, None] * box(np.fft.rfftfreq(m, 1.0 / m))[None, :]


def unfilter(c: np.ndarray, k: int) -> np.ndarray:
    """The band-limited inverse of ``R_k``: the fine field ``(..., m k, m k)`` with no
    modes outside the coarse band (and none at its Nyquist wavenumber) whose block
    average is ``c (..., m, m)`` up to ``c``'s Nyquist modes. ``R_k unfilter(c) == c``
    for a ``c`` without Nyquist modes, and ``unfilter(R_k u) == u`` for a ``u`` band-limited
    below the coarse Nyquist wavenumber (both tested): the exactly filtered state."""
    m = c.shape[-1]
    deconvolved = np.fft.irfft2(np.fft.rfft2(c) / block_transfer(m, k), s=(m, m))
    return resample(deconvolved, m * k)


def lawson_factors(lin: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Integrating factors ``(exp(-lin dt / 2), exp(-lin dt))`` of ``w' = -lin w + N(w)``."""
    e2 = np.exp(-0.5 * dt * lin)
    return e2, e2 * e2


def lawson_rk4(w: Any, rhs: Callable[[Any], Any], e2: Any, e1: Any, dt: float) -> Any:
    """One integrating-factor RK4 (Lawson) step of ``w' = -lin w + N(w)``.

    Works for numpy and torch arrays; ``e2, e1`` from `lawson_factors`. The linear part is
    integrated exactly, so the step is limited by ``N`` (advection CFL) only.
    """
    k1 = rhs(w)
    k2 = rhs(e2 * (w + 0.5 * dt * k1))
    k3 = rhs(e2 * w + 0.5 * dt * k2)
    k4 = rhs(e1 * w + dt * e2 * k3)
    return e1 * (w + dt / 6.0 * k1) + dt / 3.0 * e2 * (k2 + k3) + dt / 6.0 * k4


# ----------------------------------------------------------------------------------------
# FFT back-ends: rfft2 / irfft2 over the last two axes.
# ----------------------------------------------------------------------------------------
class FFT2:
    """Real 2D FFT pair over the last two axes; ``name`` identifies the library."""

    name = "abstract"

    def __init__(self, shape: tuple[int, int], threads: int = 1) -> None:
        self.shape = shape
        self.threads = threads

    def rfft2(self, x: Any) -> Any:
        raise NotImplementedError

    def irfft2(self, xh: Any) -> Any:
        raise NotImplementedError


class ScipyFFT2(FFT2):
    """``scipy.fft`` (pocketfft) with ``workers`` threads; bitwise independent of the
    batch size, so batched and single trajectories agree exactly."""

    name = "scipy"

    def rfft2(self, x: np.ndarray) -> np.ndarray:
        import scipy.fft

        return scipy.fft.rfft2(x, workers=self.threads)

    def irfft2(self, xh: np.ndarray) -> np.ndarray:
        import scipy.fft

        return scipy.fft.irfft2(xh, s=self.shape, workers=self.threads)


class FFTWFFT2(FFT2):
    """pyFFTW plans cached per batch shape.

    ``planner="FFTW_ESTIMATE"`` (default) gives a deterministic plan; ``FFTW_MEASURE``
    is timed at plan time, so it can pick a different algorithm from run to run and
    change round-off, which a chaotic flow amplifies over a long spin-up.
    """

    name = "fftw"

    def __init__(self, shape: tuple[int, int], threads: int = 1, planner: str = "FFTW_ESTIMATE") -> None:
        import pyfftw  # noqa: F401  (import error -> caller falls back)

        super().__init__(shape, threads)
        self.planner = planner
        self._plans: dict[tuple[str, tuple[int, ...], str], Any] = {}

    def plan(self, direction: str, lead: tuple[int, ...], tag: str = "") -> Any:
        """The FFTW object for ``direction`` in {"r2c", "c2r"} and leading shape ``lead``;
        its ``input_array`` / ``output_array`` are aligned buffers callers may fill
        (a distinct ``tag`` gives a caller private buffers)."""
        key = (direction, lead, tag)
        if key not in self._plans:
            import pyfftw

            ny, nx = self.shape
            real = pyfftw.empty_aligned((*lead, ny, nx), "float64")
            cplx = pyfftw.empty_aligned((*lead, ny, nx // 2 + 1), "complex128")
            src, dst = (real, cplx) if direction == "r2c" else (cplx, real)
            self._plans[key] = pyfftw.FFTW(
                src, dst, axes=(-2, -1), threads=self.threads, flags=(self.planner,),
                direction="FFTW_FORWARD" if direction == "r2c" else "FFTW_BACKWARD",
            )
        return self._plans[key]

    def rfft2(self, x: np.ndarray) -> np.ndarray:
        p = self.plan("r2c", tuple(x.shape[:-2]))
        p.input_array[...] = x
        return p().copy()

    def irfft2(self, xh: np.ndarray) -> np.ndarray:
        p = self.plan("c2r", tuple(xh.shape[:-2]))
        p.input_array[...] = xh
        return p().copy()  # pyFFTW normalises the backward transform by 1/(ny nx)


class TorchFFT2(FFT2):
    """``torch.fft`` on any device; threads apply to CPU only (set by the caller)."""

    name = "torch"

    def rfft2(self, x: Any) -> Any:
        import torch

        return torch.fft.rfft2(x)

    def irfft2(self, xh: Any) -> Any:
        import torch

        return torch.fft.irfft2(xh, s=self.shape)


def make_fft2(backend: str, shape: tuple[int, int], threads: int = 1, **kw: Any) -> FFT2:
    """An `FFT2` for ``backend`` in {"fftw", "scipy", "torch"}; "fftw" falls back to
    "scipy" when pyFFTW is not installed."""
    if backend == "fftw":
        try:
            return FFTWFFT2(shape, threads, **kw)
        except ImportError:
            return ScipyFFT2(shape, threads)
    if backend == "scipy":
        return ScipyFFT2(shape, threads)
    if backend == "torch":
        return TorchFFT2(shape, threads)
    raise ValueError(f"unknown FFT backend {backend!r}; valid: fftw, scipy, torch")
