"""Per-sample metric functions: tiny, pure, NumPy only.

Every function takes arrays shaped ``(N, ...)`` and returns one value per sample,
shape ``(N,)``. Aggregation over samples and seeds is the harness's job.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr, ndtri

#: probability levels for the quantile calibration error (Kuleshov et al. 2018)
ECE_LEVELS = np.linspace(0.05, 0.95, 19)
_VAR_FLOOR = 1e-12


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(len(a), -1)


def rel_l2(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """||pred - target||_2 / ||target||_2 per sample."""
    p, t = _flat(pred), _flat(target)
    return np.linalg.norm(p - t, axis=1) / np.maximum(np.linalg.norm(t, axis=1), 1e-300)


def gaussian_nll(mean: np.ndarray, var: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean Gaussian negative log-likelihood per point: 0.5 [log(2 pi s^2) + (y - m)^2 / s^2]."""
    m, v, y = _flat(mean), np.maximum(_flat(var), _VAR_FLOOR), _flat(target)
    return 0.5 * (np.log(2 * np.pi * v) + (y - m) ** 2 / v).mean(axis=1)


def calibration_curve(
    mean: np.ndarray, var: np.ndarray, target: np.ndarray, levels: np.ndarray = ECE_LEVELS
) -> np.ndarray:
    """Observed frequency of ``y <= F^-1(p)`` for each level p, pooled over all points
    (the reliability diagram; the diagonal is perfect calibration)."""
    pit = ndtr((_flat(target) - _flat(mean)) / np.sqrt(np.maximum(_flat(var), _VAR_FLOOR))).ravel()
    return (pit[:, None] <= levels[None, :]).mean(axis=0)


def quantile_ece(
    mean: np.ndarray, var: np.ndarray, target: np.ndarray, levels: np.ndarray = ECE_LEVELS
) -> np.ndarray:
    """Regression calibration error: mean over levels p of |p - freq(y <= F^-1(p))|.

    With a Gaussian predictive F, ``y <= F^-1(p)`` iff the PIT value ``F(y) <= p``.
    """
    pit = ndtr((_flat(target) - _flat(mean)) / np.sqrt(np.maximum(_flat(var), _VAR_FLOOR)))
    freq = (pit[:, :, None] <= levels[None, None, :]).mean(axis=1)  # (N, levels)
    return np.abs(freq - levels[None, :]).mean(axis=1)


def crps_gaussian(mean: np.ndarray, var: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Closed-form CRPS of N(m, s^2) at y, averaged over points:
    s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], z = (y - m) / s."""
    s = np.sqrt(np.maximum(_flat(var), _VAR_FLOOR))
    z = (_flat(target) - _flat(mean)) / s
    pdf = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    return (s * (z * (2 * ndtr(z) - 1) + 2 * pdf - 1 / np.sqrt(np.pi))).mean(axis=1)


def coverage(mean: np.ndarray, var: np.ndarray, target: np.ndarray, level: float = 0.9) -> np.ndarray:
    """Share of points inside the central ``level`` interval of N(m, s^2)."""
    half = ndtri(0.5 + level / 2) * np.sqrt(np.maximum(_flat(var), _VAR_FLOOR))
    return (np.abs(_flat(target) - _flat(mean)) <= half).mean(axis=1)
