"""Per-sample metric functions: tiny, pure, NumPy only.

Every function takes arrays shaped ``(N, ...)`` and returns one value per sample,
shape ``(N,)``, or, for pooled metrics (`nskernel.Metric.pooled`), per-sample
sufficient statistics ``(N, m)`` with the function that pools them. Aggregation over
samples and seeds is the harness's job.

The calibration error is written by hand: it must be pooled over every test point of a
cell with its finite-sample bias removed, which no library offers in that form.
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


def correlation(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Uncentred correlation ``<p, y> / (|p| |y|)`` per sample over all channels and
    points (NaN where a field is zero): 1 for ``p = c y`` with ``c > 0``."""
    p, y = _flat(pred), _flat(target)
    num = (p * y).sum(axis=1)
    den = np.sqrt((p * p).sum(axis=1) * (y * y).sum(axis=1))
    return np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)


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


def _pit_freq(mean: np.ndarray, var: np.ndarray, target: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per sample, the share of points whose PIT value ``F(y)`` is at most each level
    ``(N, levels)``: with a Gaussian predictive F, ``y <= F^-1(p)`` iff ``F(y) <= p``."""
    pit = ndtr((_flat(target) - _flat(mean)) / np.sqrt(np.maximum(_flat(var), _VAR_FLOOR)))
    return (pit[:, :, None] <= levels[None, None, :]).mean(axis=1)


def quantile_ece(
    mean: np.ndarray, var: np.ndarray, target: np.ndarray, levels: np.ndarray = ECE_LEVELS
) -> np.ndarray:
    """Per-sample calibration error (a diagnostic): mean over levels p of
    ``|p - freq(F(y) <= p)|`` over the points of each sample alone. It has a noise floor
    of about ``0.33 / sqrt(points per sample)`` and is inflated by errors correlated
    within a sample; the suite's ``ece`` pools all points (`ece_stats`)."""
    return np.abs(_pit_freq(mean, var, target, levels) - levels[None, :]).mean(axis=1)


def ece_stats(
    mean: np.ndarray, var: np.ndarray, target: np.ndarray, levels: np.ndarray = ECE_LEVELS
) -> np.ndarray:
    """Sufficient statistics of the pooled calibration error, per sample ``(N, L + 1)``:
    the PIT frequencies at the L levels and the sample's number of points."""
    freq = _pit_freq(mean, var, target, levels)
    points = np.full((len(freq), 1), _flat(target).shape[1], dtype=np.float64)
    return np.concatenate([freq, points], axis=1)


def pooled_ece(stats: np.ndarray, levels: np.ndarray = ECE_LEVELS) -> float:
    """Quantile calibration error of all points together (Kuleshov, Fenner & Ermon,
    ICML 2018), with each level's binomial sampling variance removed:

        ece = mean_p sqrt(max(0, (F_p - p)^2 - p (1 - p) / P)),

    ``F_p`` the share of all ``P`` pooled points with ``F(y) <= p``. Without the
    correction a perfectly calibrated predictor scores ``E|F_p - p| ~ 0.33 / sqrt(P)``
    (0.010 at P = 1024 points); with it, about half of that, and a miscalibration
    ``|F_p - p| >> 1 / sqrt(P)`` is measured without bias. So values compare across k,
    grids and test-set sizes."""
    freq, points = stats[:, :-1], stats[:, -1]
    total = points.sum()
    pooled = (freq * points[:, None]).sum(axis=0) / total
    excess = (pooled - levels) ** 2 - levels * (1 - levels) / total
    return float(np.sqrt(np.maximum(excess, 0.0)).mean())


def fluct_rel_l2(pred: np.ndarray, target: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Relative L2 error on the fluctuations about the climatological mean ``c`` of the
    test targets (their mean over samples and the homogeneous spatial ``axes``, per
    channel): ``||pred - y|| / ||y - c||`` per sample (VRMSE-style). Predicting ``c``
    scores exactly 1; the static mean profile no longer counts as skill."""
    y = np.asarray(target, dtype=np.float64)
    clim = y.mean(axis=(0, *axes), keepdims=True)
    return rel_l2(pred, y) * np.linalg.norm(_flat(y), axis=1) / np.maximum(
        np.linalg.norm(_flat(y - clim), axis=1), 1e-300)


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
