"""Validation of the Kuramoto family (tasks/kuramoto): graphs, partitions, the fine
solver against closed forms, and the Ott-Antonsen coarse model.

Each tolerance is stated where it is checked; where a check could pass vacuously, a
deliberately wrong variant is run next to it and must miss.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import LinearOperator
from scipy.stats import norm

from tasks.kuramoto.coarse import CoarseModel, coarse_coupling
from tasks.kuramoto.graphs import (
    coupling_matrix,
    fit_power_law,
    partition_hierarchy,
    power_law_graph,
    prolong_graph,
    restrict_graph,
)
from tasks.kuramoto.solver import SAMPLE_DT, CouplingSweep, integrate, kuramoto_rhs, order_parameter

PAIR = sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]]))  # w_12 = w_21 = 1


@pytest.fixture(scope="module")
def graph() -> sp.csr_matrix:
    return power_law_graph(20_000, exponent=2.2, mean_degree=8.0, seed=1)


@pytest.fixture(scope="module")
def hierarchy(graph):
    return partition_hierarchy(graph, levels=4, factor=4.0, seed=0)


# -- graphs and partitions ------------------------------------------------------------
def test_generated_graph_is_simple_symmetric_and_connected(graph):
    assert (graph != graph.T).nnz == 0
    assert graph.diagonal().sum() == 0 and set(np.unique(graph.data)) == {1.0}
    assert connected_components(graph, directed=False)[0] == 1
    assert 0.85 * 20_000 < graph.shape[0] <= 20_000  # the largest component keeps most nodes
    assert 7.0 < graph.sum() / graph.shape[0] < 9.0  # mean degree ~ 8 as requested


def test_fitted_degree_exponent_is_in_romas_range():
    # discrete MLE with KS-chosen k_min (Clauset et al. 2009); its standard error is
    # (alpha - 1) / sqrt(n_tail) ~ 0.02 here. The Chung-Lu exponent 2.2 comes out ~0.05
    # steeper (hub saturation, Poisson smearing): inside ROMA's 2.24-2.29 band +- 0.03.
    for seed in (0, 1):
        deg = np.asarray(power_law_graph(50_000, exponent=2.2, seed=seed).sum(axis=1)).ravel()
        alpha, kmin, tail = fit_power_law(deg)
        assert 2.21 < alpha < 2.32 and tail > 1000
    steep = np.asarray(power_law_graph(50_000, exponent=2.6, seed=0).sum(axis=1)).ravel()
    assert fit_power_law(steep)[0] > 2.5  # the estimator tells the exponents apart


def test_fit_recovers_a_sampled_discrete_power_law():
    # exact Zipf samples with alpha = 2.3, k >= 1: the fit must find it within 3 std errors
    k = np.random.default_rng(0).zipf(2.3, 20_000)
    alpha, kmin, tail = fit_power_law(k)
    assert abs(alpha - 2.3) < 3 * (alpha - 1) / math.sqrt(tail)


def test_partitions_are_nested_cover_every_node_and_shrink_geometrically(graph, hierarchy):
    n = graph.shape[0]
    assert len(hierarchy) == 5 and (hierarchy[0].members == np.arange(n)).all()
    for fine, coarse in zip(hierarchy, hierarchy[1:]):
        assert coarse.members.shape == (n,) and coarse.sizes.sum() == n and (coarse.sizes > 0).all()
        assert (coarse.parent[fine.members] == coarse.members).all()  # nested
        assert abs(fine.n_super / coarse.n_super - 4.0) < 0.05
        # summed weights: row sums are the volumes, total weight is conserved
        vol = np.bincount(coarse.members, weights=np.asarray(graph.sum(axis=1)).ravel())
        assert np.array_equal(np.asarray(coarse.adjacency.sum(axis=1)).ravel(), vol)
        assert (coarse.adjacency != coarse.adjacency.T).nnz == 0
    assert hierarchy[1].sizes.max() <= 8  # at most 3 matching passes per level, 2x each


def test_restrict_graph_preserves_sums_and_is_consistent_across_levels(hierarchy):
    u = np.random.default_rng(0).standard_normal((3, 2, len(hierarchy[0].members)))
    for lv in hierarchy[1:]:
        ru = restrict_graph(u, lv.members)
        assert ru.shape == (3, 2, lv.n_super)
        assert np.abs(ru @ lv.sizes - u.sum(-1)).max() < 1e-11 * np.abs(u).sum(-1).max()
        # restrict o prolong = id (a mean of equal values, exact up to the division's rounding)
        assert np.abs(restrict_graph(prolong_graph(ru, lv.members), lv.members) - ru).max() < 1e-14
    # R_2 u = size-weighted R_1 of R_1 u (nestedness seen through the operator)
    l1, l2 = hierarchy[1], hierarchy[2]
    two_step = restrict_graph(restrict_graph(u, l1.members) * l1.sizes, l2.parent) * np.bincount(l2.parent)
    assert np.allclose(two_step / l2.sizes, restrict_graph(u, l2.members), rtol=0, atol=1e-13)
    unweighted = restrict_graph(restrict_graph(u, l1.members), l2.parent)
    assert np.abs(unweighted - restrict_graph(u, l2.members)).max() > 1e-3  # the weights matter


def test_restrict_graph_torch_matches_numpy(hierarchy):
    torch = pytest.importorskip("torch")
    u = np.random.default_rng(1).standard_normal((2, len(hierarchy[0].members)))
    lv = hierarchy[2]
    ref = restrict_graph(u, lv.members)
    assert np.abs(restrict_graph(torch.as_tensor(u), lv.members).numpy() - ref).max() < 1e-14


# -- fine solver ----------------------------------------------------------------------
def test_two_oscillators_lock_at_the_arcsine_phase():
    # psi = phi2 - phi1: d(psi)/dt = dw - 2K sin(psi); |dw| <= 2K locks at arcsin(dw / 2K)
    k, dw = 0.8, 0.6
    phi, _ = integrate(np.zeros(2), np.array([-dw / 2, dw / 2]), k, PAIR, np.array([0.0, 40.0]))
    psi = phi[-1, 0, 1] - phi[-1, 0, 0]  # relaxation exp(-sqrt(4K^2 - dw^2) t) = e^-59
    assert abs(psi - math.asin(dw / (2 * k))) < 1e-7
    assert abs(psi - math.asin(dw / k)) > 0.1  # K instead of 2K is caught
    assert abs(phi[-1, 0, 0] + psi / 2) < 1e-7  # locked at the mean frequency, 0 here


def test_two_oscillators_drift_with_the_exact_period():
    # |dw| > 2K: psi drifts with period T = 2 pi / sqrt(dw^2 - 4 K^2)
    k, dw = 0.2, 1.0
    period = 2 * math.pi / math.sqrt(dw**2 - 4 * k**2)
    times = np.linspace(0.0, 4.2 * period, 1201)  # < pi of psi per output: unwrap is safe
    phi, _ = integrate(np.zeros(2), np.array([0.0, dw]), k, PAIR, times)
    psi = np.unwrap(phi[:, 0, 1] - phi[:, 0, 0])
    crossings = np.interp(2 * math.pi * np.arange(1, 5), psi, times)
    # linear interpolation between outputs 0.024 apart: error ~ (0.024)^2 |psi''| / 8
    assert np.abs(np.diff(crossings) - period).max() < 1e-5 * period
    assert abs(2 * math.pi / dw - period) > 0.01 * period  # the uncoupled period is caught


def test_dopri5_agrees_with_scipy_dop853_on_a_scale_free_graph():
    w = coupling_matrix(power_law_graph(400, exponent=2.2, mean_degree=6.0, seed=3))
    n = w.shape[0]
    rng = np.random.default_rng(0)
    omega, phi0 = rng.standard_normal(n), rng.uniform(-np.pi, np.pi, n)
    ref = solve_ivp(
        lambda t, y: kuramoto_rhs(y[None], omega, 1.7, w)[0], (0, 2), phi0, "DOP853", rtol=1e-12, atol=1e-12
    )
    phi, _ = integrate(phi0, omega, 1.7, w, np.array([0.0, 2.0]), rtol=1e-10, atol=1e-10)
    assert np.abs(np.exp(1j * phi[-1, 0]) - np.exp(1j * ref.y[:, -1])).max() < 1e-8


def test_tightening_the_tolerance_changes_the_result_by_less_than_the_loose_one(graph):
    w = coupling_matrix(graph)
    rng = np.random.default_rng(2)
    omega, phi0 = rng.standard_normal(w.shape[0]), rng.uniform(-np.pi, np.pi, (2, w.shape[0]))

    def run(times: np.ndarray, tol: float) -> tuple[np.ndarray, int]:
        phi, stats = integrate(phi0, omega, 1.7, w, times, rtol=tol, atol=tol)
        return np.exp(1j * phi[-1]), stats.accepted

    # free-running steps over t in [0, 1]: in the controller's norm (RMS over nodes, per
    # sample) the change is below the loose tolerance (measured 8.6e-7); the worst single
    # node moves ~35x more (3.0e-5), so the max norm gets that margin
    (loose, n_loose), (tight, n_tight) = run(np.array([0.0, 1.0]), 1e-6), run(np.array([0.0, 1.0]), 1e-11)
    assert n_tight > 4 * n_loose  # the tolerances really set different steps
    diff = np.abs(loose - tight)
    assert np.sqrt((diff**2).mean(axis=1)).max() < 1e-6 and diff.max() < 1e-4
    # at the data's sampling the output spacing caps the step (one per interval): the
    # default tolerance is then exact to round-off against 1e-12 (measured 5e-15)
    times = SAMPLE_DT * np.arange(11)
    assert np.abs(run(times, 1e-8)[0] - run(times, 1e-12)[0]).max() < 1e-10


def _mean_field(n: int) -> LinearOperator:
    """Row-normalised complete graph, w_ij = 1/(n-1) for j != i, in O(n) per product."""

    def mm(x: np.ndarray) -> np.ndarray:
        x = x.reshape(n, -1)
        return (x.sum(axis=0, keepdims=True) - x) / (n - 1)

    return LinearOperator((n, n), matvec=lambda x: mm(x).ravel(), matmat=mm, dtype=np.float64)


def _self_consistent_r(k: float) -> float:
    """Kuramoto's r = K r int_{|t|<=pi/2} cos^2 t g(K r sin t) dt for g = N(0, 1), r > 0."""

    def gap(r: float) -> float:
        return k * quad(lambda t: math.cos(t) ** 2 * norm.pdf(k * r * math.sin(t)), -np.pi / 2, np.pi / 2)[0] - 1.0

    return brentq(gap, 1e-9, 1.0, xtol=1e-13)


def test_all_to_all_order_parameter_matches_the_self_consistency_equation():
    n = 5000
    full = sp.csr_matrix(np.ones((6, 6)) - np.eye(6))
    x = np.random.default_rng(0).standard_normal((6, 3))
    assert np.allclose(_mean_field(6) @ x, coupling_matrix(full) @ x, atol=1e-15)  # the operator is W
    # sum_{j != i} sin(phi_j - phi_i) / (n-1) = n/(n-1) Im(Z e^{-i phi_i}), Z over all j:
    # the standard mean field with K' = K n / (n - 1). Quantile-spaced frequencies remove
    # the sampling noise of g; K_c = 2 / (pi g(0)) = 1.596, so all three K are supercritical
    omega = norm.ppf((np.arange(n) + 0.5) / n)
    ks = np.array([2.0, 2.5, 3.0])
    times = np.r_[0.0, np.linspace(50.0, 100.0, 51)]
    phi, _ = integrate(np.zeros((3, n)), omega, ks, _mean_field(n), times, rtol=1e-6, atol=1e-6)
    r = order_parameter(phi[1:])
    theory = np.array([_self_consistent_r(k * n / (n - 1)) for k in ks])
    # the drifting oscillators make r fluctuate in time by ~1e-3 at n = 5000 (std over the
    # window); the measured time means sit within ~2e-4 of the theory
    assert r.std(axis=0).max() < 2e-3
    assert np.abs(r.mean(axis=0) - theory).max() < 1e-3
    wrong = np.array([_self_consistent_r(1.03 * k) for k in ks])  # a 3% error in K is caught
    assert np.abs(r.mean(axis=0) - wrong).min() > 1e-3


# -- Ott-Antonsen coarse model --------------------------------------------------------
def test_coarse_model_on_singletons_is_the_fine_model(hierarchy, graph):
    w = coupling_matrix(graph)
    rng = np.random.default_rng(3)
    omega, phi0 = rng.standard_normal(w.shape[0]), rng.uniform(-np.pi, np.pi, (1, w.shape[0]))
    times = np.array([0.0, 0.25])
    phi, _ = integrate(phi0, omega, 1.7, w, times, rtol=1e-10, atol=1e-10)
    model = CoarseModel.build(w, omega, hierarchy[0].members)
    assert np.abs(model.delta).max() == 0.0
    z, _ = model.advance(model.restrict(phi0), 1.7, times, rtol=1e-10, atol=1e-10)
    assert np.abs(z[-1] - np.exp(1j * phi[-1])).max() < 1e-8


def test_coarse_coupling_is_row_stochastic(hierarchy, graph):
    w = coupling_matrix(graph)
    for lv in hierarchy:
        wc = coarse_coupling(w, lv.members)
        assert np.abs(np.asarray(wc.sum(axis=1)).ravel() - 1.0).max() < 1e-12


def test_coarse_model_of_the_complete_graph_follows_the_oa_closed_form():
    # one super-node, Wc = [[1]]: r^2 is logistic, r^2(t) = u / (1 + (u / r0^2 - 1) e^{-2 lam t})
    # with lam = K/2 - delta and u = 1 - 2 delta / K
    n, k = 50, 2.0
    w = coupling_matrix(sp.csr_matrix(np.ones((n, n)) - np.eye(n)))
    omega = np.linspace(-1.0, 1.0, n)
    model = CoarseModel.build(w, omega, np.zeros(n, dtype=int))
    delta = float(model.delta[0])
    assert abs(delta - math.sqrt(2 / math.pi) * omega.std()) < 1e-14
    times = np.linspace(0.0, 10.0, 11)
    z, _ = model.advance(np.array([[0.1 + 0.0j]]), k, times, rtol=1e-10, atol=1e-12)
    lam, u = k / 2 - delta, 1 - 2 * delta / k
    r2 = u / (1 + (u / 0.01 - 1) * np.exp(-2 * lam * times))
    assert np.abs(np.abs(z[:, 0, 0]) ** 2 - r2).max() < 1e-8
    assert np.abs(np.abs(z[-1, 0, 0]) ** 2 - (1 - delta / k)) > 0.05  # the factor 2 is caught


# -- K_c estimator and input checks ---------------------------------------------------
def test_critical_coupling_estimators_recover_a_mean_field_branch():
    ks = np.linspace(1.0, 3.0, 21)
    r = np.sqrt(np.clip(0.3 * (ks - 1.8), 0.0, None)) + 0.05 * (ks < 1.8)  # floor below K_c
    chi = np.exp(-((ks - 1.8) ** 2) / 0.02)
    peak, fit = CouplingSweep(ks, r, chi, 10_000).critical_coupling()
    assert peak == pytest.approx(1.8) and fit == pytest.approx(1.8, abs=1e-9)
    assert CouplingSweep(ks, r, chi, 10_000).critical_coupling(r_min=0.0)[1] < 1.7  # the floor biases it


def test_bad_inputs_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"exponent must lie in \(2, 4\)"):
        power_law_graph(100, exponent=1.9)
    with pytest.raises(ValueError, match="factor must be > 1"):
        partition_hierarchy(PAIR, 1, factor=1.0)
    with pytest.raises(ValueError, match="coupling matrix is"):
        integrate(np.zeros(3), np.zeros(3), 1.0, PAIR, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="strictly increasing"):
        integrate(np.zeros(2), np.zeros(2), 1.0, PAIR, np.array([1.0, 0.0]))
