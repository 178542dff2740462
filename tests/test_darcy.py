"""Darcy task: FV scheme validation, solvers, data generation, physics hooks."""

import numpy as np
import pytest
import scipy.fft
import torch

from nskernel import Prediction
from nskernel.grid import cell_centres, restrict
from tasks.darcy import fv as fv2d
from tasks.darcy.task import (
    MEANS,
    Darcy,
    Physics,
    coarse_fv_solve,
    compliance_bounds,
    energy_norm_err,
    flux_imbalance,
    grf,
    max_principle,
    residual,
    upscale,
)
from tasks.numerics import spd_solve


def manufactured(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth a, exact u = sin(pi x) sin(pi y) and f = -div(a grad u), at cell centres."""
    pi = np.pi
    x, y = cell_centres(n)[None, :], cell_centres(n)[:, None]
    a = 2.0 + np.sin(2 * pi * x) * np.cos(3 * pi * y)
    ax, ay = 2 * pi * np.cos(2 * pi * x) * np.cos(3 * pi * y), -3 * pi * np.sin(2 * pi * x) * np.sin(3 * pi * y)
    u = np.sin(pi * x) * np.sin(pi * y)
    ux, uy = pi * np.cos(pi * x) * np.sin(pi * y), pi * np.sin(pi * x) * np.cos(pi * y)
    f = -(ax * ux + ay * uy) + 2 * pi**2 * a * u
    return a, f, u


@pytest.mark.parametrize("solver", ["pcg-dst", "splu"])
def test_second_order_on_manufactured_solution(solver):
    errs = []
    for n in (16, 32, 64):
        a, f, u = manufactured(n)
        e = fv2d.solve(a, f, solver=solver) - u
        errs.append((np.sqrt(np.mean(e**2)), np.abs(e).max()))
    errs = np.array(errs)
    orders = np.log2(errs[:-1] / errs[1:])  # rows: 16->32, 32->64; cols: L2, max
    assert np.all((orders > 1.8) & (orders < 2.3)), orders


@pytest.fixture(scope="module")
def sample64():
    task = Darcy(resolution=64)
    return task, task.generate(8, seed=5)


def test_all_available_solvers_agree():
    a = Darcy(resolution=32).coefficient(0, seed=2)
    ref = fv2d.solve(a, 1.0, solver="splu")
    for name in spd_solve.available_solvers():
        np.testing.assert_allclose(fv2d.solve(a, 1.0, solver=name), ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_discrete_flux_balance_closes_on_every_block():
    task, n = Darcy(resolution=64), 64
    a = task.coefficient(1, seed=0)
    u = fv2d.solve(a, task.forcing, solver="splu")
    qx, qy = fv2d.face_fluxes(u, a)
    for k in (1, 4, 16, 64):  # k = 64: the whole domain
        nb, edges = n // k, np.arange(0, n + 1, k)
        # Net outflow of each k x k block: its right minus left faces, top minus bottom.
        out_x = (qx[:, edges[1:]] - qx[:, edges[:-1]]).reshape(nb, k, nb).sum(axis=1)
        out_y = (qy[edges[1:], :] - qy[edges[:-1], :]).reshape(nb, nb, k).sum(axis=2)
        np.testing.assert_allclose(out_x + out_y, task.forcing * (k / n) ** 2, rtol=1e-10)
    # Interior faces cancel in the sum: the walls carry the whole source out.
    walls = qx[:, -1].sum() - qx[:, 0].sum() + qy[-1].sum() - qy[0].sum()
    assert abs(walls - task.forcing) < 1e-10


def test_face_fluxes_match_the_matrix():
    a = Darcy(resolution=32).coefficient(0, seed=1)
    u = np.random.default_rng(0).normal(size=(32, 32))
    qx, qy = fv2d.face_fluxes(u, a)
    net = (qx[:, 1:] - qx[:, :-1] + qy[1:] - qy[:-1]) * 32**2
    np.testing.assert_allclose(net.ravel(), fv2d.FVPattern(32, 32).matrix(a) @ u.ravel(), rtol=1e-12, atol=1e-9)


def test_grf_discrete_karhunen_loeve_scaling():
    """(1/n^2) sum_cells g^2 = sum_ij lambda_ij xi_ij^2 exactly (discrete Parseval for
    the L2-orthonormal cosine basis), which pins the series normalisation; the constant
    mode is dropped (zero mean)."""
    n, alpha, tau = 32, 2.0, 3.0
    g = grf(n, alpha, tau, np.random.default_rng(7))
    xi = np.random.default_rng(7).standard_normal((n, n))
    i = np.arange(n)
    lam = (np.pi**2 * (i[:, None] ** 2 + i[None, :] ** 2) + tau**2) ** -alpha
    lam[0, 0] = 0.0
    assert abs(g.mean()) < 1e-15
    np.testing.assert_allclose(np.mean(g**2), np.sum(lam * xi**2), rtol=1e-12)
    # and it is a cosine series: the (orthonormal) DCT recovers lambda^(1/2) xi
    np.testing.assert_allclose(scipy.fft.dctn(g, type=2, norm="ortho") / n, np.sqrt(lam) * xi, atol=1e-12)


def test_generate_determinism_prefix_shapes_and_contrast():
    task = Darcy.sized("smoke")
    d4, d2 = task.generate(4, seed=3), task.generate(2, seed=3)
    np.testing.assert_array_equal(task.generate(4, seed=3).fine, d4.fine)
    np.testing.assert_array_equal(d2.inputs, d4.inputs[:2])
    np.testing.assert_array_equal(d2.targets[16], d4.targets[16][:2])
    assert not np.array_equal(task.generate(2, seed=4).inputs, d2.inputs)
    assert d4.inputs.shape == d4.fine.shape == (4, 1, 32, 32) and d4.inputs.dtype == np.float32
    assert {k: v.shape for k, v in d4.targets.items()} == {4: (4, 1, 8, 8), 8: (4, 1, 4, 4), 16: (4, 1, 2, 2)}
    assert set(np.unique(d4.inputs)) == {3.0, 12.0}
    assert np.all(np.abs((d4.inputs == 12.0).mean(axis=(1, 2, 3)) - 0.5) < 0.25)  # zero-mean field: both phases
    np.testing.assert_allclose(d4.targets[16], restrict(d4.targets[4], 4), rtol=1e-6, atol=0)
    np.testing.assert_allclose(task.spec().fine_solve(d4.inputs), d4.fine, rtol=1e-6)
    assert (d4.fine > 0).all()  # maximum principle: f > 0, u = 0 on the walls


def test_spec_shapes_names_and_solver_name():
    spec = Darcy.sized("small").spec()
    assert spec.fine_shape == (64, 64) and spec.in_names == ("a",) and spec.out_names == ("u",)
    assert spec.boundary == "dirichlet" and spec.coarse_solvers["fv"].params == {"mean": "arithmetic"}
    assert spec.coarse_solvers["fv"].choices == {"mean": MEANS}
    small = "fv5-cholmod" if "cholmod" in spd_solve.available_solvers() else "fv5-pcg-dst"
    assert spec.fine_solver_name == small
    assert Darcy.sized("paper").spec().fine_solver_name == "fv5-pcg-dst"
    assert Darcy(resolution=32, solver="splu").spec().fine_solver_name == "fv5-splu"
    high = Darcy(resolution=32, contrast=(1000.0, 1.0)).spec().fine_solver_name
    assert high in {f"fv5-{s}" for s in spd_solve.FALLBACK_ORDER}


def test_data_do_not_depend_on_optional_solvers(monkeypatch):
    task = Darcy.sized("smoke")
    assert task.data_solver == "pcg-dst" and Darcy(resolution=32, contrast=(100.0, 1.0)).data_solver == "splu"
    with_all = task.generate(2, seed=0)
    monkeypatch.setattr(spd_solve, "available_solvers", lambda: ("pcg-dst", "splu", "spsolve"))
    np.testing.assert_array_equal(task.generate(2, seed=0).fine, with_all.fine)


def test_cholmod_is_optional(monkeypatch):
    monkeypatch.setattr(spd_solve, "available_solvers", lambda: ("pcg-dst", "splu", "spsolve"))
    assert spd_solve.resolve_solver("auto", contrast=1000.0) == "splu"
    assert spd_solve.resolve_solver("auto", contrast=4.0, cells=64 * 64) == "pcg-dst"
    with pytest.raises(ValueError, match="not installed.*splu"):
        spd_solve.resolve_solver("cholmod")


def test_value_errors_name_valid_choices():
    with pytest.raises(ValueError, match="smoke, small, paper"):
        Darcy.sized("huge")
    with pytest.raises(ValueError, match="pcg-dst, cholmod, splu"):
        Darcy(solver="magic")
    with pytest.raises(ValueError, match="harmonic, arithmetic, geometric"):
        coarse_fv_solve(np.ones((1, 1, 32, 32)), 4, mean="median")
    with pytest.raises(ValueError, match="multiple of 16"):
        Darcy(resolution=40)


def test_coarse_solver_all_means_and_default_beats_harmonic(sample64):
    task, ds = sample64
    solve = task.spec().coarse_solvers["fv"].solve
    u = ds.fine.astype(np.float64)
    for k in (4, 8, 16):
        tgt = restrict(u, k)
        err = {}
        for mean in MEANS:
            p = solve(ds.inputs, k, mean=mean)
            assert p.shape == tgt.shape and p.dtype == np.float64
            rel = np.linalg.norm((p - tgt).reshape(8, -1), axis=1) / np.linalg.norm(tgt.reshape(8, -1), axis=1)
            err[mean] = rel.mean()
        assert err["arithmetic"] < 0.7 * err["harmonic"], err  # measured ratio ~0.5 (docs/darcy.md)
        assert err["arithmetic"] < 0.3
        # the coarse solution has zero coarse residual: hook and solver share one operator
        r = residual(torch.from_numpy(solve(ds.inputs, k)), torch.from_numpy(ds.inputs), k)
        assert r.abs().max() < 1e-8


def test_upscaling_means_are_ordered():
    a = np.stack([Darcy(resolution=32).coefficient(i, seed=0) for i in range(2)])
    h, m, g = (upscale(a, 4, mean) for mean in MEANS)
    assert np.all(h <= g + 1e-12) and np.all(g <= m + 1e-12) and (h < m).any()
    np.testing.assert_allclose(upscale(torch.from_numpy(a), 4, "geometric").numpy(), g, rtol=1e-14)


def test_residual_hook_fine_grid_matches_matrix(sample64):
    task, ds = sample64
    spec = task.spec()
    a = ds.inputs[:2].astype(np.float64)
    u = fv2d.solve(a, task.forcing, solver="splu")
    r0 = spec.residual(torch.from_numpy(u), torch.from_numpy(a), 1)
    assert r0.abs().max() < 1e-10  # ~0 on the (direct) fine solution
    v = np.random.default_rng(0).normal(size=u.shape) * 0.01
    vt = torch.tensor(v, requires_grad=True)
    r = spec.residual(vt, torch.from_numpy(a), 1)
    mat = fv2d.FVPattern(64, 64).matrix(a[1, 0])
    expected = (mat @ v[1, 0].ravel() - task.forcing) / task.forcing
    scale = np.abs(expected).max()
    np.testing.assert_allclose(r[1, 0].detach().numpy().ravel(), expected, rtol=1e-12, atol=1e-12 * scale)
    (0.5 * (r[1] ** 2).sum()).backward()  # differentiable: gradient = A^T r / f
    np.testing.assert_allclose(vt.grad[1, 0].numpy().ravel(), mat.T @ expected / task.forcing, rtol=1e-10)
    r32 = spec.residual(torch.zeros(2, 1, 16, 16), torch.from_numpy(ds.inputs[:2]), 4)
    assert r32.dtype == torch.float32 and torch.allclose(r32, -torch.ones_like(r32))  # u = 0: residual -1


# -- conservation laws and the energy-norm error (docs/darcy.md, "Conservation laws") ----------
def _metric(name):
    (m,) = [m for m in Darcy.metrics if m.name == name]
    return m


def test_metrics_are_declared_with_one_headline_law():
    task = Darcy(resolution=32)
    assert [m.name for m in task.metrics] == ["max_principle", "compliance_bound", "energy_norm_err"]
    assert [m.name for m in task.metrics if m.group == "physics" and m.headline] == ["max_principle"]
    assert task.spec().physics == Physics(task.forcing)


def test_max_principle_exact_on_truth_and_coarse_solver_large_on_wrong_signs(sample64):
    task, ds = sample64
    spec, metric = task.spec(), _metric("max_principle")
    assert ds.fine.min() > 0  # M-matrix, f > 0, zero walls: u > 0 in every fine cell
    for k in (4, 8, 16):
        t = ds.targets[k]
        assert np.all(metric.fn(Prediction(t), t, ds.inputs, k, spec) == 0.0)
        for mean in MEANS:  # the coarse FV matrix is an M-matrix for every upscaling mean
            p = coarse_fv_solve(ds.inputs, k, mean=mean)
            assert np.all(metric.fn(Prediction(p), t, ds.inputs, k, spec) == 0.0), (k, mean)
        assert np.all(metric.fn(Prediction(-t), t, ds.inputs, k, spec) == 1.0)
        assert np.all(metric.fn(Prediction(0 * t), t, ds.inputs, k, spec) == 0.0)  # u = 0 breaks no sign
        dipped = t - 0.5 * t.max(axis=(1, 2, 3), keepdims=True)  # negative near the walls
        assert np.all(metric.fn(Prediction(dipped), t, ds.inputs, k, spec) > 0.1)
    # closed form: one cell of -1 among n ones scores 1/sqrt(n); a negative source flips the law
    one = np.ones((1, 1, 4, 4))
    one[0, 0, 1, 2] = -1.0
    assert max_principle(one, 1.0)[0] == pytest.approx(0.25, rel=1e-15)
    assert max_principle(-one, -2.0)[0] == pytest.approx(0.25, rel=1e-15)
    assert max_principle(one, -1.0)[0] == pytest.approx(np.sqrt(15.0) / 4.0, rel=1e-15)


def test_compliance_bounds_are_exact_and_close_on_a_homogeneous_medium():
    # a constant coefficient: the Voigt and Reuss bounds coincide with the exact mean
    for c in (1.0, 7.0):
        a = np.full((1, 1, 32, 32), c)
        lo, hi = compliance_bounds(a)
        mean = fv2d.solve(a, 1.0, solver="splu").mean()
        np.testing.assert_allclose([lo[0], hi[0]], [mean, mean], rtol=1e-10)
    # two-phase media, high contrast included: the exact (direct) mean lies inside, strictly
    for contrast in ((12.0, 3.0), (100.0, 1.0)):
        task = Darcy(resolution=32, contrast=contrast)
        a = np.stack([task.coefficient(i, seed=4) for i in range(4)])[:, None]
        lo, hi = compliance_bounds(a)
        for forcing in (1.0, 2.5):
            mean = fv2d.solve(a, forcing, solver="splu").mean(axis=(1, 2, 3)) / forcing
            assert np.all(lo < 0.95 * mean) and np.all(mean < hi / 1.05), (contrast, lo, mean, hi)


def test_compliance_bound_zero_on_truth_closed_form_on_constants(sample64):
    task, ds = sample64
    spec, metric = task.spec(), _metric("compliance_bound")
    lo, hi = compliance_bounds(ds.inputs)
    for k in (4, 8, 16):
        t = ds.targets[k]
        assert np.all(metric.fn(Prediction(t), t, ds.inputs, k, spec) == 0.0)
        # the coarse FV solution: inside at k = 4, 8; at k = 16 (4x4 cells) measured 0 on 63 of
        # 64 small test samples and 0.012 on one (docs/darcy.md)
        coarse = metric.fn(Prediction(coarse_fv_solve(ds.inputs, k)), t, ds.inputs, k, spec)
        assert np.all(coarse <= (0.0 if k < 16 else 0.05)), (k, coarse)
        np.testing.assert_array_equal(metric.fn(Prediction(0 * t), t, ds.inputs, k, spec), 1.0)
        const = np.ones_like(t, dtype=np.float64)
        np.testing.assert_allclose(metric.fn(Prediction(0.5 * lo[:, None, None, None] * const), t, ds.inputs, k, spec),
                                   0.5, rtol=1e-12)
        np.testing.assert_allclose(metric.fn(Prediction(2.0 * hi[:, None, None, None] * const), t, ds.inputs, k, spec),
                                   1.0, rtol=1e-12)
        assert np.all(metric.fn(Prediction(0.5 * t), t, ds.inputs, k, spec) > 0.3)  # measured 0.40 (small)
        assert np.all(metric.fn(Prediction(2.0 * t), t, ds.inputs, k, spec) > 0.3)  # measured 0.56


def test_energy_norm_err_closed_forms_and_coarse_solver_level(sample64):
    task, ds = sample64
    spec, metric = task.spec(), _metric("energy_norm_err")
    levels = {4: 0.15, 8: 0.25, 16: 0.45}  # coarse FV measured 0.060 / 0.11 / 0.25 on small
    for k in (4, 8, 16):
        t = ds.targets[k].astype(np.float64)
        assert np.all(metric.fn(Prediction(t), t, ds.inputs, k, spec) == 0.0)
        np.testing.assert_allclose(metric.fn(Prediction(1.3 * t), t, ds.inputs, k, spec), 0.3, rtol=1e-10)
        np.testing.assert_allclose(metric.fn(Prediction(0 * t), t, ds.inputs, k, spec), 1.0, rtol=1e-12)
        coarse = metric.fn(Prediction(coarse_fv_solve(ds.inputs, k)), t, ds.inputs, k, spec)
        assert np.all((coarse > 0.01) & (coarse < levels[k])), (k, coarse)
    # the definition, against the assembled coarse matrix: sqrt(e^T A_k e / y^T A_k y)
    k, t = 4, ds.targets[4][:1].astype(np.float64)
    p = t + np.random.default_rng(1).normal(size=t.shape) * 1e-3
    mat = fv2d.FVPattern(16, 16).matrix(upscale(ds.inputs[0, 0].astype(np.float64), k, "arithmetic"))
    e, y = (p - t).ravel(), t.ravel()
    np.testing.assert_allclose(energy_norm_err(p, t, ds.inputs[:1], k), np.sqrt(e @ mat @ e / (y @ mat @ y)),
                               rtol=1e-10)


def test_flux_imbalance_is_the_closure_error_of_the_truth(sample64):
    """Not a law: the coarse FV solution balances its own fluxes, the filtered truth does
    not (the closure error of the upscaled two-point coarse model, 0.28-0.32 on small)."""
    task, ds = sample64
    for k in (4, 8, 16):
        assert np.all(flux_imbalance(coarse_fv_solve(ds.inputs, k), ds.inputs, k) < 1e-8)
        truth = flux_imbalance(ds.targets[k], ds.inputs, k)
        assert np.all((truth > 0.1) & (truth < 0.8)), (k, truth)
    np.testing.assert_allclose(flux_imbalance(np.zeros((2, 1, 16, 16)), ds.inputs[:2], 4), 1.0, rtol=1e-12)
