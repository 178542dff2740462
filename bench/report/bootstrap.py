"""Percentile bootstrap confidence intervals over test samples (and seeds).

The statistic a leaderboard shows is the mean over seeds of each seed's mean over its
test samples. Its sampling distribution is estimated by resampling the test samples
*within* each seed (with replacement, the seed's own sample count), taking each seed's
mean and averaging over seeds; the CI is the (α/2, 1-α/2) percentile of ``n_boot``
such replicates. Seeds are kept fixed (not resampled): with 1-5 seeds a seed bootstrap
would be meaningless, and the seed spread is shown separately as the ± std.

Each interval draws from its own generator seeded by (``RNG_SEED``, a hash of the
entry's key), so a CI does not depend on which other CIs were computed before it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np

N_BOOT = 1000
LEVEL = 0.95
RNG_SEED = 20_250_101
_MAX_DRAWS = 4_000_000  # index draws per block: bounds memory for large test sets


def rng_for(key: str, seed: int = RNG_SEED) -> np.random.Generator:
    """A generator determined by ``seed`` and ``key`` only (crc32: stable across runs,
    unlike Python's salted ``hash``)."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def bootstrap_means(groups: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` replicates of mean over groups of the within-group resampled mean."""
    stats = np.zeros(n_boot)
    for g in groups:
        g = np.asarray(g, dtype=np.float64).ravel()
        block = max(1, _MAX_DRAWS // len(g))
        for start in range(0, n_boot, block):
            stop = min(n_boot, start + block)
            idx = rng.integers(0, len(g), size=(stop - start, len(g)))
            stats[start:stop] += g[idx].mean(axis=1)
    return stats / len(groups)


def bootstrap_ci(
    groups: Sequence[np.ndarray],
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    rng: np.random.Generator | None = None,
) -> tuple[float, float] | None:
    """Percentile CI of the mean over groups (seeds) of the per-group mean (samples).

    Returns None when there is nothing to resample (no group, an empty group) or a
    value is not finite (the interval would be meaningless).
    """
    if not groups or any(np.size(g) == 0 for g in groups):
        return None
    if not all(np.isfinite(np.asarray(g, dtype=np.float64)).all() for g in groups):
        return None
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = rng if rng is not None else rng_for("")
    stats = bootstrap_means(groups, n_boot, rng)
    lo, hi = np.quantile(stats, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def ci_for(key: str, groups: Sequence[np.ndarray]) -> tuple[float, float] | None:
    """The report's CI (B = N_BOOT, 95%) with the key-derived generator."""
    ci = bootstrap_ci(groups, rng=rng_for(key))
    return ci if ci is None or all(math.isfinite(v) for v in ci) else None
