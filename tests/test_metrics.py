"""Metric properties and closed forms."""

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from bench.catalog import metric_catalog, metric_info
from bench.metrics import METRICS, core
from nskernel import Metric, Tolerance
from nskernel.errors import UsageError

RNG = np.random.default_rng(0)


def test_rel_l2_zero_on_identical_and_scale_invariant():
    y = RNG.normal(size=(4, 1, 8, 8))
    p = y + 0.1 * RNG.normal(size=y.shape)
    assert np.all(core.rel_l2(y, y) == 0)
    np.testing.assert_allclose(core.rel_l2(3.0 * p, 3.0 * y), core.rel_l2(p, y))
    # known value: prediction 0 has relative error exactly 1; 2y has error 1
    np.testing.assert_allclose(core.rel_l2(np.zeros_like(y), y), 1.0)
    np.testing.assert_allclose(core.rel_l2(2 * y, y), 1.0)


def test_rel_l2_is_per_sample():
    y = np.ones((2, 1, 4, 4))
    p = y.copy()
    p[1] *= 1.5
    np.testing.assert_allclose(core.rel_l2(p, y), [0.0, 0.5])


@pytest.fixture(scope="module")
def gaussian():
    """A million points y ~ N(m, s^2) with known m and s."""
    m = RNG.normal(size=(2, 500_000))
    s = np.exp(RNG.normal(scale=0.3, size=m.shape))
    y = m + s * RNG.normal(size=m.shape)
    return m, s, y


def test_nll_closed_form(gaussian):
    m, s, y = gaussian
    expected = (0.5 * np.log(2 * np.pi * s**2) + 0.5).mean(axis=1)
    np.testing.assert_allclose(core.gaussian_nll(m, s**2, y), expected, atol=5e-3)


def test_ece_calibrated_is_near_zero(gaussian):
    m, s, y = gaussian
    assert core.quantile_ece(m, s**2, y).max() < 3e-3


def test_ece_two_times_too_narrow_matches_closed_form(gaussian):
    m, s, y = gaussian
    # Predicted sd s/2: PIT = Phi(2z), so freq(p) = P(z <= Phi^-1(p)/2) = Phi(Phi^-1(p)/2).
    p = core.ECE_LEVELS
    expected = np.abs(ndtr(ndtri(p) / 2) - p).mean()
    got = core.quantile_ece(m, (s / 2) ** 2, y)
    np.testing.assert_allclose(got, expected, atol=3e-3)
    assert expected > 0.1  # the closed form is far from 0: the test can tell


def test_crps_closed_forms(gaussian):
    m, s, y = gaussian
    # At y = m: CRPS = s (2 phi(0) - 1/sqrt(pi)) = s (sqrt(2) - 1) / sqrt(pi)
    np.testing.assert_allclose(core.crps_gaussian(m, s**2, m), (s * (np.sqrt(2) - 1) / np.sqrt(np.pi)).mean(1))
    # Vanishing variance: CRPS -> |y - m|
    np.testing.assert_allclose(core.crps_gaussian(m, np.full_like(m, 1e-16), y), np.abs(y - m).mean(1), rtol=1e-6)
    # Expected CRPS of a calibrated Gaussian: s / sqrt(pi)
    np.testing.assert_allclose(core.crps_gaussian(m, s**2, y), (s / np.sqrt(np.pi)).mean(1), rtol=5e-3)


def test_coverage(gaussian):
    m, s, y = gaussian
    np.testing.assert_allclose(core.coverage(m, s**2, y), 0.9, atol=2e-3)
    # twice too narrow: P(|z| <= 1.645 / 2)
    np.testing.assert_allclose(core.coverage(m, (s / 2) ** 2, y), 2 * ndtr(ndtri(0.95) / 2) - 1, atol=2e-3)


def test_registry_names_and_directions():
    assert {"rel_l2", "fluct_rel_l2", "nll", "ece", "crps", "coverage_90"} <= set(METRICS)
    assert metric_info("speedup").direction == "higher" and metric_info("rel_l2").direction == "lower"
    assert metric_info("rollout_rel_l2@4") is METRICS["rollout_rel_l2"]
    assert metric_info("coverage_90").score(0.85) == pytest.approx(0.05)  # closest to 0.9 is best
    assert metric_info("speedup").score(3.0) < metric_info("speedup").score(2.0)  # higher is better
    with pytest.raises(UsageError, match="valid: rel_l2"):
        metric_info("rel_l3")


def test_task_metrics_are_in_the_catalog_once():
    catalog = metric_catalog()
    assert {"spectrum_err", "nusselt_err", "profile_err"} <= set(catalog)
    assert catalog["nusselt_err"].tolerance == Tolerance(0.05, 1e-3)


@pytest.mark.parametrize("bad, match", [
    ({"direction": "sideways"}, "unknown metric direction"),
    ({"group": "misc"}, "unknown group"),
    ({"requires": ("gpu",)}, "unknown requirement"),
    ({"name": "a@b"}, "free of '@'"),
])
def test_metric_records_reject_bad_declarations(bad, match):
    with pytest.raises(ValueError, match=match):
        Metric(**{"name": "m", "description": "d", **bad})
