"""Scores of sample-based probabilistic predictions: pure NumPy, float64.

``samples`` is ``(S, N, ...)``: S draws from the predictive distribution (ensemble members,
MC-dropout draws, HMC draws) for each of N test instances, an instance being a field of any
trailing shape (e.g. ``(C, h, w)``); ``target`` is ``(N, ...)``. Per-instance functions
return ``(N,)`` (the harness averages them); the calibration diagnostics return per-instance
sufficient statistics that a second function pools over instances. The P points of an
instance are its ``prod(trailing shape)`` entries; D = P for the energy score.

* CRPS of the empirical ensemble at a point (Gneiting & Raftery 2007, eq. 21), averaged over
  the points of an instance::

      CRPS = 1/S sum_i |x_i - y| - 1/(2 S^2) sum_{i,j} |x_i - x_j|          (fair=False)

  The fair estimator (Ferro 2014; Zamo & Naveau 2018) divides the pair term by 2 S (S - 1):
  it is unbiased for the CRPS of the distribution the members are drawn from. The pair sum
  uses the sorted-sample identity sum_{i,j} |x_i - x_j| = 2 sum_i (2i - S - 1) x_(i)
  (x_(1) <= ... <= x_(S), i 1-based), O(S log S) instead of O(S^2), summed by parts over the
  gaps, 2 sum_{k<S} k (S - k) (x_(k+1) - x_(k)): non-negative, exactly 0 for equal members, and
  free of the cancellation of large |x_(i)| that the first form suffers.
* Energy score (Gneiting & Raftery 2007, eq. 22) of the whole instance flattened to x in R^D::

      ES = [1/S sum_i ||x_i - y|| - 1/(2 S^2) sum_{i,j} ||x_i - x_j||] / sqrt(D)

  (fair: 2 S (S - 1)). The 1/sqrt(D) normalisation (ours) makes it comparable across grids:
  for D = 1 it is the CRPS, and it is an RMS-like quantity per point.
* Spread-skill ratio (Fortin et al. 2014): sqrt((S + 1)/S * mean var) / sqrt(mean (xbar - y)^2),
  pooled over points and instances, var the unbiased (ddof=1) ensemble variance. If the truth
  is exchangeable with the members, E (xbar - y)^2 = (1 + 1/S) sigma^2, so the ratio is 1 in
  expectation; members with c times the true spread give c sqrt((S + 1)/(S + c^2)), which
  tends to c only as S grows (0.52 and 1.73 for c = 1/2 and 2 at S = 8).
* Rank histogram (Anderson 1996; Hamill 2001): rank of y among the S members = number of
  members strictly below y, ties broken uniformly at random, so rank is in 0..S. Its flatness
  is the reliability index of Delle Monache et al. (2006), RI = sum_j |f_j - 1/(S + 1)| over
  the pooled relative frequencies f_j (0 when flat). For a calibrated ensemble and P
  independent pooled points, f_j is binomial and E RI ~= sqrt(2 S / (pi P))
  (`rank_flatness_floor`): the noise floor below which RI carries no signal. Spatially
  correlated points have fewer effective points and a higher floor.

These are written by hand, although properscoring and scoringrules (the oracles of
``tests/test_sample_metrics.py``) compute the CRPS and energy score, because the suite needs
one value per test instance (mean over its points; the energy score normalised by sqrt(D))
and the pooled sufficient statistics of the spread-skill ratio and rank histogram, which
those libraries do not give in that form.

References: Gneiting & Raftery (2007), JASA 102, 359-378. Ferro (2014), QJRMS 140, 1917-1923.
Zamo & Naveau (2018), Math. Geosci. 50, 209-234. Fortin et al. (2014), J. Hydrometeor. 15,
1708-1713. Delle Monache et al. (2006), J. Geophys. Res. 111. Hamill (2001), Mon. Wea. Rev.
129, 550-560. Anderson (1996), J. Climate 9, 1518-1530.
"""

from __future__ import annotations

import numpy as np


def _check(samples: np.ndarray, target: np.ndarray, min_members: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """float64 ``(S, N, P)`` samples and ``(N, P)`` target, after checking the shapes."""
    x, y = np.asarray(samples, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if x.ndim < 2 or y.ndim < 1 or x.shape[1:] != y.shape:
        raise ValueError(
            f"samples must be (S, N, ...) and target (N, ...) with the same trailing shape; "
            f"got samples {x.shape} and target {y.shape}"
        )
    if x.shape[0] < min_members:
        raise ValueError(f"need at least {min_members} samples (members) per instance, got S={x.shape[0]}")
    n = y.shape[0]
    return x.reshape(x.shape[0], n, -1), y.reshape(n, -1)


def _pair_denominator(s: int, fair: bool) -> int:
    return 2 * s * (s - 1) if fair else 2 * s * s


def crps_ensemble(samples: np.ndarray, target: np.ndarray, fair: bool = True) -> np.ndarray:
    """CRPS of the empirical ensemble per point, mean over the points of each instance: ``(N,)``.

    1/S sum_i |x_i - y| - sum_{i,j} |x_i - x_j| / (2 S^2), or / (2 S (S - 1)) if ``fair``
    (needs S >= 2); the pair sum is 2 sum_i (2i - S - 1) x_(i) = 2 sum_k k (S - k) gap_k over
    the sorted members, gap_k = x_(k+1) - x_(k).
    """
    x, y = _check(samples, target, min_members=2 if fair else 1)
    s = x.shape[0]
    skill = np.abs(x - y[None]).mean(axis=0)  # (N, P)
    k = np.arange(1, s, dtype=np.float64)
    gaps = np.diff(np.sort(x, axis=0), axis=0)  # (S - 1, N, P), >= 0
    pairs = 2.0 * np.tensordot(k * (s - k), gaps, axes=(0, 0))  # sum_{i,j} |x_i - x_j|, (N, P)
    return (skill - pairs / _pair_denominator(s, fair)).mean(axis=1)


def energy_score(samples: np.ndarray, target: np.ndarray, fair: bool = True) -> np.ndarray:
    """Energy score of each instance as one vector in R^D, divided by sqrt(D): ``(N,)``.

    [1/S sum_i ||x_i - y|| - sum_{i,j} ||x_i - x_j|| / (2 S^2)] / sqrt(D), the pair term over
    2 S (S - 1) if ``fair`` (needs S >= 2). Equals `crps_ensemble` for D = 1. Memory O(S N D).
    """
    x, y = _check(samples, target, min_members=2 if fair else 1)
    s, d = x.shape[0], x.shape[2]
    skill = np.linalg.norm(x - y[None], axis=2).mean(axis=0)  # (N,)
    pairs = np.zeros(y.shape[0])
    for i in range(s - 1):  # direct differences: exact 0 for equal members (a Gram form cancels)
        pairs += np.linalg.norm(x[i + 1 :] - x[i], axis=2).sum(axis=0)
    return (skill - 2.0 * pairs / _pair_denominator(s, fair)) / np.sqrt(d)


def spread_skill_stats(samples: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-instance sufficient statistics of the spread-skill ratio: ``(N, 3)``.

    Columns: mean over points of the unbiased (ddof=1) ensemble variance; mean over points
    of the squared error of the ensemble mean, (xbar - y)^2; S, the number of members (so
    that `spread_skill_ratio` needs nothing else, and rows from ensembles of different
    sizes can be stacked). Needs S >= 2.
    """
    x, y = _check(samples, target, min_members=2)
    var = x.var(axis=0, ddof=1).mean(axis=1)
    mse = ((x.mean(axis=0) - y) ** 2).mean(axis=1)
    return np.stack([var, mse, np.full_like(var, x.shape[0])], axis=1)


def spread_skill_ratio(stats: np.ndarray) -> float:
    """Pooled spread-skill ratio of `spread_skill_stats` rows (Fortin et al. 2014).

    sqrt(mean_n[(S_n + 1)/S_n var_n] / mean_n[mse_n]): with one S, sqrt((S + 1)/S * mean var)
    / sqrt(mean mse). 1 in expectation for a calibrated ensemble, < 1 under-dispersed,
    > 1 over-dispersed. Instances are weighted equally (they have the same number of points).
    """
    st = np.asarray(stats, dtype=np.float64)
    if st.ndim != 2 or st.shape[1] != 3 or len(st) == 0:
        raise ValueError(f"stats must be (N, 3) rows of spread_skill_stats with N >= 1, got shape {st.shape}")
    s = st[:, 2]
    if np.any(s < 2):
        raise ValueError(f"the third column must be the number of members S >= 2, got min {s.min()}")
    return float(np.sqrt(np.mean((s + 1) / s * st[:, 0]) / np.mean(st[:, 1])))


def rank_counts(samples: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-instance rank histogram of the truth among the members: ``(N, S + 1)`` int64 counts.

    rank = #{i: x_i < y} + U, U uniform on 0..#{i: x_i = y} (random tie-breaking with the
    explicit ``rng``), so a calibrated ensemble gives uniform ranks on 0..S even with ties.
    Each row sums to the number of points P. Non-finite values raise ValueError (they would
    otherwise land silently in a rank).
    """
    x, y = _check(samples, target)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("rank_counts needs finite samples and target")
    s, n = x.shape[0], y.shape[0]
    rank = (x < y[None]).sum(axis=0)  # (N, P)
    ties = (x == y[None]).sum(axis=0)
    tied = ties > 0
    rank[tied] += rng.integers(0, ties[tied] + 1)
    flat = rank + (s + 1) * np.arange(n)[:, None]
    return np.bincount(flat.ravel(), minlength=n * (s + 1)).reshape(n, s + 1)


def rank_flatness(counts: np.ndarray) -> float:
    """Reliability index of the pooled rank histogram (Delle Monache et al. 2006).

    sum_j |f_j - 1/(S + 1)|, f_j = sum_n counts[n, j] / sum counts: 0 when flat, at most
    2 S/(S + 1). A calibrated ensemble scores about `rank_flatness_floor` (finite-sample noise).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"counts must be (M, S + 1) with S >= 1, got shape {c.shape}")
    total = c.sum()
    if not total > 0:
        raise ValueError("counts are empty (no points)")
    f = c.sum(axis=0) / total
    return float(np.abs(f - 1.0 / c.shape[1]).sum())


def rank_flatness_floor(n_members: int, n_points: int) -> float:
    """Expected `rank_flatness` of a calibrated ensemble of S members over P independent points.

    Each f_j ~ Binomial(P, 1/(S + 1))/P, so E|f_j - 1/(S + 1)| ~= sqrt(2/pi) sqrt(S/(S + 1)^2 / P)
    and the sum over the S + 1 bins is sqrt(2 S / (pi P)) (normal approximation, P >> S).
    """
    if n_members < 1 or n_points < 1:
        raise ValueError(f"need n_members >= 1 and n_points >= 1, got {n_members} and {n_points}")
    return float(np.sqrt(2.0 * n_members / (np.pi * n_points)))
