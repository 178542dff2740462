"""Array backends for `tasks.boussinesq`: the few transforms and array helpers it needs.

Arrays are ``(..., rows, columns)`` with rows along z (physical) and columns along x
(physical ``W`` points, or ``nk`` Fourier coefficients). Two interchangeable backends:

* `NumpyOps`: scipy.fft (pocketfft, native real-to-real DCT; ``workers`` threads). The CPU
  choice and the reference.
* `TorchOps`: torch.fft on any device (GPU for the ``paper`` size). The DCT-II along z is
  one complex FFT of the even/odd-reordered input (Makhoul 1980).

Both compute the same float64 numbers to round-off (tests/test_convection.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft
import torch


class NumpyOps:
    backend = "numpy"

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers

    def rfft(self, f: np.ndarray, nk: int) -> np.ndarray:
        """First ``nk`` coefficients of the real FFT along x, ``norm="forward"``."""
        return scipy.fft.rfft(f, axis=-1, norm="forward", workers=self.workers)[..., :nk]

    def irfft(self, c: np.ndarray, w: int) -> np.ndarray:
        """Inverse of `rfft` onto ``w`` points (missing columns are zero)."""
        return scipy.fft.irfft(c, n=w, axis=-1, norm="forward", workers=self.workers)

    def dct_rows(self, c: np.ndarray) -> np.ndarray:
        """Orthonormal DCT-II along z (rows); diagonalises the cell-centred Neumann Laplacian."""
        return scipy.fft.dct(c, type=2, axis=-2, norm="ortho", workers=self.workers)

    def idct_rows(self, c: np.ndarray) -> np.ndarray:
        return scipy.fft.idct(c, type=2, axis=-2, norm="ortho", workers=self.workers)

    def asarray(self, a: Any, complex_: bool = False) -> np.ndarray:
        return np.asarray(a, dtype=np.complex128 if complex_ else np.float64)

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    @staticmethod
    def cat_rows(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts, axis=-2)

    @staticmethod
    def stack(parts: list[np.ndarray]) -> np.ndarray:
        return np.stack(parts)

    @staticmethod
    def zero_rows(a: np.ndarray, n: int = 1) -> np.ndarray:
        return np.zeros_like(a[..., :n, :])

    @staticmethod
    def zeros_like(a: np.ndarray) -> np.ndarray:
        return np.zeros_like(a)

    @staticmethod
    def amax(a: np.ndarray) -> float:
        return float(np.abs(a).max())

    @staticmethod
    def sqrt(a: np.ndarray) -> np.ndarray:
        return np.sqrt(a)


class TorchOps:
    backend = "torch"

    def __init__(self, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self._dct_cache: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def rfft(self, f: torch.Tensor, nk: int) -> torch.Tensor:
        return torch.fft.rfft(f, dim=-1, norm="forward")[..., :nk]

    def irfft(self, c: torch.Tensor, w: int) -> torch.Tensor:
        return torch.fft.irfft(c, n=w, dim=-1, norm="forward")

    def _plan(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Twiddles ``exp(-i pi k / 2n)``, orthonormal scales and the even/odd reordering."""
        if n not in self._dct_cache:
            k = torch.arange(n, device=self.device, dtype=torch.float64)
            scale = torch.full_like(k, math.sqrt(2.0 / n))
            scale[0] = math.sqrt(1.0 / n)
            twiddle = torch.exp(-1j * (math.pi / (2 * n)) * k.to(torch.complex128))
            even = torch.arange(0, n, 2, device=self.device)
            odd = torch.arange(1, n, 2, device=self.device).flip(0)
            self._dct_cache[n] = (twiddle[:, None], scale[:, None], torch.cat([even, odd]))
        return self._dct_cache[n]

    def _dct_real(self, x: torch.Tensor) -> torch.Tensor:
        """``y_k = s_k sum_n x_n cos(pi k (2n+1) / 2n)`` = Re(twiddle_k FFT(v)_k) s_k."""
        twiddle, scale, perm = self._plan(x.shape[-2])
        return (torch.fft.fft(x.index_select(-2, perm), dim=-2) * twiddle).real * scale

    def _idct_real(self, y: torch.Tensor) -> torch.Tensor:
        """Inverse: ``FFT(v)_k = conj(twiddle_k) (Y_k - i Y_{n-k})`` with ``Y = y / s``, ``Y_n = 0``."""
        twiddle, scale, perm = self._plan(y.shape[-2])
        z = y / scale
        z_rev = torch.cat([torch.zeros_like(z[..., :1, :]), z[..., 1:, :].flip(-2)], dim=-2)
        v = torch.fft.ifft((z - 1j * z_rev) * twiddle.conj(), dim=-2).real
        out = torch.empty_like(v)
        out.index_copy_(-2, perm, v)
        return out

    def dct_rows(self, c: torch.Tensor) -> torch.Tensor:
        r = self._dct_real(torch.stack([c.real, c.imag]))
        return torch.complex(r[0], r[1])

    def idct_rows(self, c: torch.Tensor) -> torch.Tensor:
        r = self._idct_real(torch.stack([c.real, c.imag]))
        return torch.complex(r[0], r[1])

    def asarray(self, a: Any, complex_: bool = False) -> torch.Tensor:
        t = torch.as_tensor(a, device=self.device)
        return t.to(torch.complex128 if complex_ else torch.float64)

    def to_numpy(self, a: torch.Tensor) -> np.ndarray:
        return a.detach().cpu().numpy()

    @staticmethod
    def cat_rows(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts, dim=-2)

    @staticmethod
    def stack(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(parts)

    @staticmethod
    def zero_rows(a: torch.Tensor, n: int = 1) -> torch.Tensor:
        return torch.zeros_like(a[..., :n, :])

    @staticmethod
    def zeros_like(a: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(a)

    @staticmethod
    def amax(a: torch.Tensor) -> float:
        return float(a.abs().max())

    @staticmethod
    def sqrt(a: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(a)


Ops = NumpyOps | TorchOps


def make_ops(backend: str = "numpy", workers: int = 1, device: str = "cpu") -> Ops:
    """``"numpy"`` (scipy.fft, ``workers`` threads) or ``"torch"`` (on ``device``)."""
    if backend == "numpy":
        return NumpyOps(workers)
    if backend == "torch":
        return TorchOps(device)
    raise ValueError(f"unknown backend {backend!r}; valid: numpy, torch")


__all__ = ["NumpyOps", "TorchOps", "Ops", "make_ops"]
