"""Sample-based scores (bench.metrics.samples) against properscoring / scoringrules and closed forms."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import properscoring as ps
import pytest
import scoringrules as sr

from bench.metrics import samples as sm

SHAPES = [(1, 4, 4), (3, 2, 5)]
MEMBERS = [2, 5, 17]
RTOL = 1e-6


def _data(seed: int, s: int, n: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.3, 1.5, (s, n, *shape)), rng.normal(0.0, 2.0, (n, *shape))


def _gaussian_fields(rng: np.random.Generator, s: int, n: int, p: int, spread: float = 1.0, bias: float = 0.0):
    """Truth and S members drawn from the same per-point N(mu, sigma^2), members with ``spread`` x sigma."""
    mu, sigma = rng.normal(0.0, 3.0, (n, p)), rng.uniform(0.5, 2.0, (n, p))
    y = mu + sigma * rng.standard_normal((n, p))
    x = mu + bias * sigma + spread * sigma * rng.standard_normal((s, n, p))
    return x, y


# -- CRPS and energy score against the oracles --------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("s", MEMBERS)
def test_crps_matches_oracles(s, shape):
    x, y = _data(s, s, 6, shape)
    got = sm.crps_ensemble(x, y, fair=False)
    ref = ps.crps_ensemble(y, np.moveaxis(x, 0, -1)).reshape(6, -1).mean(axis=1)
    assert got.shape == (6,)
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    ref_nrg = sr.crps_ensemble(y, x, m_axis=0, estimator="nrg", backend="numpy").reshape(6, -1).mean(axis=1)
    np.testing.assert_allclose(got, ref_nrg, rtol=RTOL)
    ref_fair = sr.crps_ensemble(y, x, m_axis=0, estimator="fair", backend="numpy").reshape(6, -1).mean(axis=1)
    np.testing.assert_allclose(sm.crps_ensemble(x, y, fair=True), ref_fair, rtol=RTOL)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("s", MEMBERS)
@pytest.mark.parametrize("fair", [False, True])
def test_energy_score_matches_scoringrules(s, shape, fair):
    x, y = _data(100 + s, s, 6, shape)
    d = int(np.prod(shape))
    fct = np.moveaxis(x, 0, 1).reshape(6, s, d)  # (N, S, D): m_axis=-2, v_axis=-1
    ref = sr.es_ensemble(y.reshape(6, d), fct, estimator="fair" if fair else "nrg", backend="numpy") / np.sqrt(d)
    got = sm.energy_score(x, y, fair=fair)
    assert got.shape == (6,)
    np.testing.assert_allclose(got, ref, rtol=RTOL)


@pytest.mark.parametrize("fair", [False, True])
def test_energy_score_of_one_point_is_the_crps(fair):
    x, y = _data(7, 9, 20, (1,))
    np.testing.assert_allclose(sm.energy_score(x, y, fair), sm.crps_ensemble(x, y, fair), rtol=1e-12)


def test_fair_crps_is_unbiased_for_the_gaussian_crps():
    # members ~ N(0, 1), y = 0: the Gaussian CRPS is (sqrt(2) - 1)/sqrt(pi) ~ 0.2337 at any S for the
    # fair estimator; the energy form is biased up by E|X - X'|/(2S) = 1/(S sqrt(pi)) (0.113 at S = 5)
    rng = np.random.default_rng(0)
    s, p = 5, 40_000
    x, y = rng.standard_normal((s, 1, p)), np.zeros((1, p))
    exact = (np.sqrt(2) - 1) / np.sqrt(np.pi)
    assert sm.crps_ensemble(x, y, fair=True)[0] == pytest.approx(exact, abs=0.005)
    assert sm.crps_ensemble(x, y, fair=False)[0] == pytest.approx(exact + 1 / (s * np.sqrt(np.pi)), abs=0.005)
    big = rng.standard_normal((4000, 1, 8))  # and one large ensemble per point
    assert sm.crps_ensemble(big, np.zeros((1, 8)))[0] == pytest.approx(exact, abs=0.01)


@pytest.mark.parametrize("fair", [False, True])
def test_members_equal_to_the_truth_score_zero(fair):
    y = np.random.default_rng(1).normal(size=(4, 2, 3, 3))
    x = np.broadcast_to(y, (6, *y.shape))
    assert np.array_equal(sm.crps_ensemble(x, y, fair), np.zeros(4))
    assert np.array_equal(sm.energy_score(x, y, fair), np.zeros(4))


def test_float32_inputs_are_scored_in_float64():
    x, y = _data(3, 5, 4, (2, 3))
    got = sm.crps_ensemble(x.astype(np.float32), y.astype(np.float32))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, sm.crps_ensemble(x.astype(np.float32).astype(np.float64), y.astype(np.float32)))


# -- spread-skill ratio ---------------------------------------------------------------------


@pytest.mark.parametrize("spread", [1.0, 0.5, 2.0])
def test_spread_skill_ratio(spread):
    # E ratio = c sqrt((S + 1)/(S + c^2)) for members with c x the true spread: 1, 0.522, 1.732 at S = 8
    s = 8
    x, y = _gaussian_fields(np.random.default_rng(2), s, 50, 400, spread=spread)
    stats = sm.spread_skill_stats(x, y)
    assert stats.shape == (50, 3) and np.all(stats[:, 2] == s)
    expected = spread * np.sqrt((s + 1) / (s + spread**2))
    assert sm.spread_skill_ratio(stats) == pytest.approx(expected, rel=0.03)


def test_spread_skill_stats_columns():
    x, y = _data(4, 5, 3, (2, 2))
    stats = sm.spread_skill_stats(x, y)
    np.testing.assert_allclose(stats[:, 0], x.var(axis=0, ddof=1).reshape(3, -1).mean(axis=1))
    np.testing.assert_allclose(stats[:, 1], ((x.mean(axis=0) - y) ** 2).reshape(3, -1).mean(axis=1))
    ratio = np.sqrt(6 / 5 * stats[:, 0].mean() / stats[:, 1].mean())
    assert sm.spread_skill_ratio(stats) == pytest.approx(ratio, rel=1e-12)


# -- rank histogram -------------------------------------------------------------------------


def test_rank_counts_without_ties_match_a_direct_count():
    x, y = _data(5, 7, 4, (3, 5))
    counts = sm.rank_counts(x, y, np.random.default_rng(0))
    rank = (x < y[None]).sum(axis=0).reshape(4, -1)
    assert counts.shape == (4, 8) and np.all(counts.sum(axis=1) == 15)
    for n in range(4):
        np.testing.assert_array_equal(counts[n], np.bincount(rank[n], minlength=8))


def test_rank_flatness_floor_and_miscalibration():
    s, n, p = 8, 20, 200  # 4000 pooled points: floor sqrt(2 S/(pi P)) = 0.0357
    rng = np.random.default_rng(3)
    floor = sm.rank_flatness_floor(s, n * p)
    # over 1000 seeds a calibrated ensemble scored mean 1.02 x floor, 99.9th percentile 2.1 x floor
    calibrated = sm.rank_flatness(sm.rank_counts(*_gaussian_fields(rng, s, n, p), rng))
    assert calibrated < 2.5 * floor
    narrow = sm.rank_counts(*_gaussian_fields(rng, s, n, p, spread=0.5), rng).sum(axis=0)
    assert narrow[0] > 2 * narrow[s // 2] and narrow[s] > 2 * narrow[s // 2]  # U-shaped
    assert sm.rank_flatness(narrow[None]) > 10 * floor
    biased = sm.rank_counts(*_gaussian_fields(rng, s, n, p, bias=1.0), rng)
    assert sm.rank_flatness(biased) > 10 * floor


def test_rank_flatness_noise_floor_is_measured():
    rng = np.random.default_rng(4)
    s, p = 4, 500
    vals = [sm.rank_flatness(sm.rank_counts(rng.standard_normal((s, 1, p)), rng.standard_normal((1, p)), rng))
            for _ in range(200)]
    assert np.mean(vals) == pytest.approx(sm.rank_flatness_floor(s, p), rel=0.1)


def test_ties_are_broken_uniformly():
    s, n, p = 6, 10, 700
    x, y = np.zeros((s, n, p)), np.zeros((n, p))  # every member equals the truth
    counts = sm.rank_counts(x, y, np.random.default_rng(5))
    assert np.all(counts.sum(axis=1) == p)
    assert sm.rank_flatness(counts) < 2.5 * sm.rank_flatness_floor(s, n * p)
    # and reproducibly, with the explicit generator only
    np.testing.assert_array_equal(counts, sm.rank_counts(x, y, np.random.default_rng(5)))


def test_partial_ties_rank_between_the_strict_bounds():
    x = np.array([0.0, 1.0, 1.0, 1.0, 2.0]).reshape(5, 1, 1) * np.ones((5, 1, 3000))
    counts = sm.rank_counts(x, np.ones((1, 3000)), np.random.default_rng(6))[0]
    assert counts[0] == counts[5] == 0 and counts[1:5].min() > 600  # uniform on 1..4


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn", [sm.crps_ensemble, sm.energy_score, sm.spread_skill_stats, lambda x, y: sm.rank_counts(x, y, None)]
)
def test_mismatched_shapes_raise(fn):
    with pytest.raises(ValueError, match=r"\(4, 3, 2, 2\).*\(3, 2, 5\)"):
        fn(np.zeros((4, 3, 2, 2)), np.zeros((3, 2, 5)))
    with pytest.raises(ValueError, match="samples"):
        fn(np.zeros(3), np.zeros(3))


def test_too_few_members_and_bad_stats_raise():
    x, y = np.zeros((1, 2, 3)), np.zeros((2, 3))
    for fn in (sm.crps_ensemble, sm.energy_score, sm.spread_skill_stats):
        with pytest.raises(ValueError, match="S=1"):
            fn(x, y)
    assert np.array_equal(sm.crps_ensemble(x, y, fair=False), np.zeros(2))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        sm.spread_skill_ratio(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"\(M, S \+ 1\)"):
        sm.rank_flatness(np.ones(5))
    with pytest.raises(ValueError, match="finite"):
        sm.rank_counts(np.full((3, 1, 2), np.nan), np.zeros((1, 2)), np.random.default_rng(0))


def test_module_imports_numpy_only():
    tree = ast.parse(Path(sm.__file__).read_text())
    roots = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert roots <= {"__future__", "numpy", "scipy"}
