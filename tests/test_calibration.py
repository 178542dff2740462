"""Calibration scores on closed forms, the fluctuation error, and the conformal wrapper."""

import zlib

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from bench.metrics import METRICS, core
from bench.names import build_method
from bench.scoring import evaluate
from methods.conformal import Conformal, conformal_quantile, nearest_factor
from methods.mean import MeanField
from nskernel import Budget, Context, Dataset, Factors, Method, Prediction, TaskSpec, UsageError
from nskernel.grid import restrict
from tasks import TASKS

ECE = METRICS["ece"]


def _ece(mean, var, y):
    return ECE.pooled(ECE.fn(Prediction(mean, var), y, None, 1, None))


def _small_grids():
    """(task, k, output shape of the test set) of every task's `small` size."""
    for name, cls in TASKS.items():
        task = cls.sized("small")
        spec = task.spec()
        for k in spec.k_values:
            yield name, k, (task.n_test, spec.out_channels, *spec.coarse_shape(k))


@pytest.mark.parametrize("name,k,shape", list(_small_grids()), ids=lambda v: str(v))
def test_a_calibrated_predictor_scores_pooled_ece_below_001_at_every_small_grid(name, k, shape):
    # Gaussian truth drawn from the predictive law itself; heteroscedastic, correlated
    # across points only through the shared (random) means. Over 20 test sets the mean
    # pooled ECE is its expectation to ~10%; a single test set's value fluctuates by
    # ~O(1/sqrt(points)) (docs/metrics.md gives the floor).
    rng = np.random.default_rng([zlib.crc32(name.encode()), k])
    vals = []
    for _ in range(20):
        mean, sd = rng.normal(size=shape), rng.uniform(0.5, 2.0, size=shape)
        vals.append(_ece(mean, sd**2, mean + sd * rng.normal(size=shape)))
    assert np.mean(vals) < 0.01
    # the per-sample diagnostic is far above it at few points per sample (the old noise floor)
    per_sample = METRICS["ece_per_sample"].fn(Prediction(mean, sd**2), mean + sd * rng.normal(size=shape), None, k,
                                              None).mean()
    assert per_sample > np.mean(vals)


def test_pooled_ece_of_a_too_narrow_gaussian_is_the_closed_form():
    rng = np.random.default_rng(1)
    shape = (64, 1, 16, 16)
    mean = rng.normal(size=shape)
    y = mean + 2.0 * rng.normal(size=shape)  # the predictive sd (1) is half the true one
    levels = core.ECE_LEVELS
    exact = np.mean(np.abs(levels - ndtr(ndtri(levels) / 2)))  # ~0.102
    assert _ece(mean, np.ones(shape), y) == pytest.approx(exact, abs=0.004)


def test_pooling_removes_the_bias_of_errors_correlated_within_a_sample():
    # Each sample's error is one N(0, 1) draw shared by all its points: calibrated overall,
    # but every sample on its own looks badly miscalibrated.
    rng = np.random.default_rng(2)
    shape = (400, 1, 8, 8)
    y = np.broadcast_to(rng.normal(size=(400, 1, 1, 1)), shape)
    mean, var = np.zeros(shape), np.ones(shape)
    per_sample = METRICS["ece_per_sample"].fn(Prediction(mean, var), y, None, 8, None).mean()
    assert per_sample > 0.2
    assert _ece(mean, var, y) < 0.03  # 400 independent errors: the pooled floor of 400 values


def test_fluctuation_error_scores_climatology_one_and_truth_zero():
    rng = np.random.default_rng(3)
    profile = np.linspace(2.0, -1.0, 8)[None, None, :, None]  # a static mean profile in rows
    y = profile + 0.1 * rng.normal(size=(32, 2, 8, 16))
    clim = y.mean(axis=(0, -1), keepdims=True)
    fluct = lambda p: core.fluct_rel_l2(p, y, (-1,))  # noqa: E731
    np.testing.assert_allclose(fluct(np.broadcast_to(clim, y.shape)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(fluct(y), 0.0, atol=1e-15)
    # the static profile makes rel_l2 look good while the fluctuation error is 1
    assert core.rel_l2(np.broadcast_to(clim, y.shape), y).mean() < 0.1
    # closed form: an error e gives ||e|| / ||y - c||
    e = 0.05 * rng.normal(size=y.shape)
    expect = np.linalg.norm(e.reshape(32, -1), axis=1) / np.linalg.norm((y - clim).reshape(32, -1), axis=1)
    np.testing.assert_allclose(fluct(y + e), expect, rtol=1e-12)


# -- split-conformal calibration -------------------------------------------------------------
def test_conformal_quantile_covers_exchangeable_scores():
    rng = np.random.default_rng(4)
    hits = []
    for _ in range(400):
        cal, new = rng.exponential(size=50), rng.exponential()
        hits.append(new <= conformal_quantile(cal, 0.9))
    # the guarantee: P(cover) >= 0.9 (and <= 0.9 + 1/(n+1) for continuous scores)
    assert 0.87 <= np.mean(hits) <= 0.96
    assert conformal_quantile(np.arange(5.0), 0.9) == np.inf  # too few scores for 90%
    assert nearest_factor(16, (4, 8)) == 8 and nearest_factor(4, (4, 8)) == 4


SPEC = TaskSpec(name="toy", fine_shape=(32, 32), in_channels=1, out_channels=1, in_names=("a",), out_names=("u",),
                boundary="dirichlet")


def _toy(n: int, seed: int) -> Dataset:
    """u = R_k(x) + noise whose size grows with the input's local amplitude."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 32, 32))
    return Dataset(inputs=x, targets={k: restrict(x, k) * 0.5 + 0.3 * rng.normal(size=(n, 1, 32 // k, 32 // k))
                                      for k in (4, 8, 16)})


class _Gaussian(Method):
    """A Gaussian predictor whose variance is wrong by a factor 4 (too narrow)."""

    name = "toy_gaussian"
    probabilistic = True

    def fit(self, train, spec, budget, ctx):
        return self

    def predict(self, inputs, k):
        mean = restrict(inputs, k) * 0.5
        return Prediction(mean=mean, var=np.full_like(mean, 0.3**2 / 4),
                          samples=mean + 0.15 * np.random.default_rng(k).normal(size=(8, *mean.shape)))


@pytest.mark.parametrize("base", ["mean", "gaussian"])
def test_conformal_wrapper_reaches_its_coverage_at_training_factors(base):
    train, val, test = _toy(16, 0), _toy(64, 1), _toy(128, 2)
    method = Conformal(base="mean")
    method.wrap(_Gaussian() if base == "gaussian" else MeanField())
    train = Dataset(inputs=train.inputs, targets={k: train.targets[k] for k in (4, 8)},
                    validation=Dataset(inputs=val.inputs, targets={k: val.targets[k] for k in (4, 8)}))
    method.fit(train, SPEC, Budget(epochs=1, max_train_s=10, batch_size=8), Context())
    rows = evaluate(method, SPEC, test, Factors((4, 8), (4, 8, 16)), Context(),
                    [METRICS["coverage_90"], METRICS["ece"]])
    by = {(r["metric"], r["k"]): r["value"] for r in rows}
    for k in (4, 8):
        assert by[("coverage_90", k)] == pytest.approx(0.9, abs=0.03), (base, k)
    if base == "gaussian":
        # the too-narrow Gaussian had coverage 2 Phi(1.645 / 2) - 1 = 0.59; its ECE falls too
        assert by[("ece", 4)] < 0.03
        # the unseen k borrows k = 8's calibration; the toy's noise does not depend on k
        assert by[("coverage_90", 16)] == pytest.approx(0.9, abs=0.05)
        pred = method.predict(test.inputs[:4], 4)
        assert pred.samples is not None and pred.samples.shape[1:] == pred.mean.shape


def test_isotonic_recalibration_restores_calibration_of_a_too_narrow_gaussian():
    train, val, test = _toy(8, 0), _toy(64, 1), _toy(128, 2)
    method = Conformal(base="toy_gaussian", mode="isotonic")
    method.wrap(_Gaussian())
    train = Dataset(inputs=train.inputs, targets={4: train.targets[4]},
                    validation=Dataset(inputs=val.inputs, targets={4: val.targets[4]}))
    method.fit(train, SPEC, Budget(epochs=1, max_train_s=10, batch_size=8), Context())
    pred, y = method.predict(test.inputs, 4), test.targets[4]
    raw = method.wrapped.predict(test.inputs, 4)
    assert _ece(raw.mean, raw.var, y) > 0.08
    assert _ece(pred.mean, pred.var, y) < 0.02
    assert np.mean(np.abs(y - pred.mean) <= 1.645 * np.sqrt(pred.var)) == pytest.approx(0.9, abs=0.03)


def test_the_harness_builds_the_wrapped_method_and_refuses_bad_bases():
    name, method = build_method("conformal:base=fno:width=16,mode=isotonic")
    assert name == "conformal:base=fno:width=16,mode=isotonic"
    assert method.wrapped.name == "fno" and method.wrapped.width == 16 and method.mode == "isotonic"
    with pytest.raises(UsageError, match="valid: .*fno"):
        build_method("conformal:base=fnoo")
    with pytest.raises(UsageError, match="cannot wrap another wrapper"):
        build_method("conformal:base=conformal")
    with pytest.raises(UsageError, match="valid: conformal, isotonic"):
        build_method("conformal:mode=bayes")
    with pytest.raises(RuntimeError, match="no base method"):
        Conformal().wrapped  # noqa: B018 -- built outside the harness, nothing wrapped
