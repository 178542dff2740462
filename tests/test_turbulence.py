"""Validation of the turbulence task: fine solver, coarse solvers, data and metrics.

Each check has a tolerance tight enough to catch a wrong factor, or runs a deliberately
broken variant next to the real one to show that it can fail.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from nskernel import Prediction
from nskernel.grid import restrict
from tasks.numerics.spectral import PeriodicGrid, resample
from tasks.turbulence import arakawa
from tasks.turbulence import kernels as tk
from tasks.turbulence import metrics as tm
from tasks.turbulence.solver import VorticitySolver, energy_enstrophy
from tasks.turbulence.task import CFL_FINE, TIME_TOL, Turbulence


def smooth_field(n: int, seed: int = 0, kmax: int = 4) -> np.ndarray:
    """A band-limited random vorticity field (modes |k_i| <= kmax), rms 3."""
    y, x = PeriodicGrid.square(n).coords()
    rng = np.random.default_rng(seed)
    om = np.zeros((n, n))
    for a in range(-kmax, kmax + 1):
        for b in range(kmax + 1):
            om += rng.standard_normal() * np.cos(a * x + b * y + rng.uniform(0, 2 * np.pi)) / (1 + a * a + b * b)
    return om * (3.0 / om.std())


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def task() -> Turbulence:
    # smoke grid and physics, shortened spin-up and trajectories to keep the test fast
    return dataclasses.replace(Turbulence.sized("smoke"), spinup=3.0, snapshots=4, n_train=8, n_test=4)


@pytest.fixture(scope="module")
def data(task):
    return task.generate(12, seed=1)


# -- fine solver ----------------------------------------------------------------------
def test_steady_euler_modes_decay_at_the_exact_rate():
    # modes with one |k| make J(psi, omega) = 0, so only viscosity and drag act:
    # omega(t) = omega(0) exp(-(nu |k|^2 + alpha) t); the nonlinear term must cancel exactly
    n, nu, alpha, t = 32, 0.02, 0.1, 1.5
    y, x = PeriodicGrid.square(n).coords()
    om = (np.cos(3 * x) * np.cos(4 * y) + np.sin(5 * y) + 0 * x)[None]
    s = VorticitySolver(n, nu, alpha, backend="scipy")
    w, _ = s.advance(s.to_spectral(om), t, 0.5)
    exact = om * math.exp(-(nu * 25 + alpha) * t)
    assert rel(s.to_physical(w), exact) < 1e-12
    assert rel(om * math.exp(-(nu * 5 + alpha) * t), exact) > 1e-2  # a wrong rate is visible


def test_basdevant_form_equals_the_advective_form():
    n = 32
    s = VorticitySolver(n, 0.0, backend="scipy")
    w = s.to_spectral(smooth_field(n, 2, kmax=8)[None])
    ky, kx = s.grid.k()
    u, v = s.velocity(w)
    wx, wy = np.fft.irfft2(1j * kx * w, s=(n, n)), np.fft.irfft2(1j * ky * w, s=(n, n))
    adv = np.fft.rfft2(u * wx + v * wy) * s.grid.dealias_mask()
    assert np.abs(s.rhs(w) + adv).max() < 1e-10 * np.abs(adv).max()


def test_inviscid_invariants_are_conserved_at_rk4_order():
    n = 32
    s = VorticitySolver(n, 0.0, backend="scipy")
    om = smooth_field(n)[None]
    e0, z0 = energy_enstrophy(om)
    drift = []
    for dt in (0.04, 0.02, 0.01):
        w = s.to_spectral(om)
        for _ in range(round(1.0 / dt)):
            w = s.step(w, dt)
        e, z = energy_enstrophy(s.to_physical(w))
        assert abs(e - e0) / e0 < 1e-5
        drift.append(abs(z - z0).item() / z0.item())
    assert drift[-1] < 1e-6
    # Galerkin truncation conserves both exactly; RK4 dissipates at order 5 in dt
    assert drift[0] / drift[1] > 16 and drift[1] / drift[2] > 16


def test_spectral_convergence_in_space():
    def run(n: int) -> np.ndarray:
        y, x = PeriodicGrid.square(n).coords()
        om = np.exp(np.sin(x) + np.cos(y))
        s = VorticitySolver(n, 0.05, backend="scipy")
        w = s.to_spectral((om - om.mean())[None])
        for _ in range(50):
            w = s.step(w, 0.005)
        return resample(s.to_physical(w), 96)

    ref = run(96)
    err = [rel(run(n), ref) for n in (12, 16, 24, 32)]
    assert err[-1] < 1e-6
    assert all(a > 10 * b for a, b in zip(err, err[1:]))  # exponential, not algebraic


def test_chosen_cfl_meets_the_time_tolerance(task, data):
    s = task.solver()
    w0 = s.to_spectral(data.inputs[:2, 0].astype(np.float64))

    # over one time unit, the longest horizon the presets use (`turbulence:horizon=1`); the
    # time error of the default quarter horizon is smaller still
    def run(cfl: float) -> np.ndarray:  # the targets' accuracy: R_4 of the fine result
        return restrict(s.to_physical(s.advance(w0, max(task.horizon, 1.0), cfl)[0]), 4)

    ref = run(CFL_FINE / 4)
    assert rel(run(CFL_FINE), ref) < TIME_TOL
    with np.errstate(all="ignore"):  # twice the step misses it (or blows up): the check can fail
        assert not rel(run(2 * CFL_FINE), ref) < TIME_TOL


@pytest.mark.skipif(not tk.available(), reason="numba/pyFFTW not installed")
def test_fused_kernels_match_array_expressions():
    n = 48
    om = np.stack([smooth_field(n, 3, 10), smooth_field(n, 4, 10)])
    f = smooth_field(n, 5)
    a = VorticitySolver(n, 0.01, 0.1, f, backend="fftw", fused=True)
    b = VorticitySolver(n, 0.01, 0.1, f, backend="scipy")
    assert a.fused and not b.fused
    wa, wb = a.to_spectral(om), b.to_spectral(om)
    for _ in range(3):
        wa, wb = a.step(wa, 0.01), b.step(wb, 0.01)
    assert rel(a.to_physical(wa), b.to_physical(wb)) < 1e-13


def test_torch_backend_matches_numpy():
    n = 32
    om = smooth_field(n, 6, 8)[None]
    a = VorticitySolver(n, 0.01, 0.1, backend="torch")
    b = VorticitySolver(n, 0.01, 0.1, backend="scipy")
    wa, wb = a.to_spectral(om), b.to_spectral(om)
    for _ in range(3):
        wa, wb = a.step(wa, 0.01), b.step(wb, 0.01)
    assert rel(a.to_physical(wa).numpy(), b.to_physical(wb)) < 1e-13


def test_padded_dealiasing_is_exact_and_smagorinsky_dissipates():
    n, big = 24, 96
    om = smooth_field(n, 7, 11)[None]
    pad = VorticitySolver(n, 0.0, backend="scipy", dealias="pad")
    ref = VorticitySolver(big, 0.0, backend="scipy")  # 2/3 band 31 > 11 + 11: exact products
    r = pad.to_physical(pad.rhs(pad.to_spectral(om)))
    exact = resample(ref.to_physical(ref.rhs(ref.to_spectral(resample(om, big)))), n)
    assert rel(r, exact) < 1e-12
    trunc = VorticitySolver(n, 0.0, backend="scipy")  # the 2/3 rule drops a third of the band
    assert rel(trunc.to_physical(trunc.rhs(trunc.to_spectral(om))), exact) > 1e-2
    les = VorticitySolver(n, 0.0, backend="scipy", dealias="pad", smagorinsky=0.2)
    _, z0 = energy_enstrophy(om)
    _, z_les = energy_enstrophy(les.to_physical(les.advance(les.to_spectral(om), 0.5, 0.5)[0]))
    _, z_dns = energy_enstrophy(pad.to_physical(pad.advance(pad.to_spectral(om), 0.5, 0.5)[0]))
    assert abs(z_dns - z0) < 1e-3 * z0 and z_les < z_dns - 0.01 * z0  # only RK4 error vs eddy dissipation


# -- coarse solvers -------------------------------------------------------------------
def test_arakawa_conserves_energy_and_enstrophy():
    n = 32
    h = 2 * np.pi / n
    om = smooth_field(n, 1)[None]

    def drift(jac) -> tuple[float, float]:
        orig, arakawa.jacobian = arakawa.jacobian, jac
        try:
            s = arakawa.ArakawaSolver(n, 0.0, 0.0)
            e0, z0 = arakawa.energy_enstrophy(om, h)
            e, z = arakawa.energy_enstrophy(s.advance(om, 1.0, 0.2), h)
        finally:
            arakawa.jacobian = orig
        return abs(e - e0).item() / e0.item(), abs(z - z0).item() / z0.item()

    def j_pp(a, b, h):  # the plain centred Jacobian J++: conserves neither invariant
        s = arakawa.shift
        return ((s(a, 1, 0) - s(a, -1, 0)) * (s(b, 0, 1) - s(b, 0, -1))
                - (s(a, 0, 1) - s(a, 0, -1)) * (s(b, 1, 0) - s(b, -1, 0))) / (4 * h * h)

    assert max(drift(arakawa.jacobian)) < 1e-7
    assert max(drift(j_pp)) > 1e-4


def test_coarse_solvers_beat_persistence(task, data):
    spec = task.spec()
    for k in (4, 8):
        truth = data.targets[k]
        persistence = rel(data.rollouts[k][:, 0], truth)
        for family, cs in spec.coarse_solvers.items():
            out = cs.solve(data.inputs, k, **cs.params)
            assert out.shape == truth.shape and np.isfinite(out).all()
            if family == "dns" and k == 8:
                # no subgrid model on the smoke grid's 10^2 coarse cells: under-resolved, it loses
                # to persistence over a quarter turnover (it is a ladder rung, not a coarse model)
                continue
            assert rel(out, truth) < persistence, (family, k)
            again = cs.advance(restrict(data.inputs.astype(np.float64), k), k, **cs.params)
            np.testing.assert_allclose(again, out, rtol=1e-10, atol=1e-10)


def test_differentiable_les_equals_the_numpy_les_to_round_off(task, data, one_torch_thread):
    """The torch LES (the `closure` method's solver) against `coarse_spectral`'s: same
    step count, same fields to round-off, at every k."""
    cs = task.spec().coarse_solvers["spectral"]
    for k in (4, 8, 16):
        state = restrict(data.inputs.astype(np.float64), k)
        ref = cs.advance(state, k, **cs.params)
        out, steps = cs.differentiable(torch.as_tensor(state), **cs.params)
        assert out.dtype == torch.float64 and out.shape == ref.shape and steps > 1
        assert np.abs(out.numpy() - ref).max() < 1e-12 * np.abs(ref).max(), k
        # the step count is the CFL rule's: one step fewer is a different (coarser) solve
        fewer, _ = cs.differentiable(torch.as_tensor(state), steps=steps - 1, **cs.params)
        assert np.abs(fewer.numpy() - ref).max() > 1e-8 * np.abs(ref).max()


def test_differentiable_les_gradients_and_closure_hook(task, one_torch_thread):
    """Gradients through the solver match finite differences (gradcheck on an 8^2 grid,
    two steps); gradients reach a closure's parameters; a zero closure is the LES; the
    closure cannot change the circulation (the domain mean of omega)."""
    cs = task.spec().coarse_solvers["spectral"]
    state = torch.as_tensor(restrict(smooth_field(32, seed=4)[None, None], 4))
    state.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: cs.differentiable(s, steps=2)[0], (state,), eps=1e-6, atol=1e-6)
    weight = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    out = cs.differentiable(state.detach(), closure=lambda om: weight * om, steps=2)[0]
    (grad,) = torch.autograd.grad(out.square().sum(), weight)
    assert torch.isfinite(grad) and grad.abs() > 0
    plain = cs.differentiable(state.detach(), steps=2)[0]
    zero = cs.differentiable(state.detach(), closure=lambda om: 0.0 * om, steps=2)[0]
    assert torch.equal(plain, zero)  # a zero closure changes nothing, bit for bit
    # a constant tendency has no effect (circulation is conserved), a varying one does
    const = cs.differentiable(state.detach(), closure=lambda om: torch.ones_like(om), steps=2)[0]
    assert (const - plain).abs().max() < 1e-12 * plain.abs().max()
    assert abs(float(out.detach().mean() - plain.mean())) < 1e-12 and (out - plain).abs().max() > 1e-3
    # a fluid at rest has zero strain, where d sqrt/dx is infinite: gradients stay finite
    rest = torch.zeros_like(state, requires_grad=True)
    (g_rest,) = torch.autograd.grad(cs.differentiable(rest, closure=lambda om: weight * om, steps=2)[0].sum(), rest)
    assert torch.isfinite(g_rest).all()


# -- data, hooks and metrics ----------------------------------------------------------
def test_generate_is_deterministic_prefix_and_consistent(task, data):
    spec = task.spec()
    n = task.n
    assert spec.fine_shape == (n, n) and n % 16 == 0
    assert data.inputs.shape == (12, 1, n, n) and data.inputs.dtype == np.float32
    small = task.generate(4, seed=1)
    np.testing.assert_array_equal(small.inputs, data.inputs[:4])  # prefix property
    np.testing.assert_array_equal(small.targets[8], data.targets[8][:4])
    assert not np.array_equal(task.generate(4, seed=2).inputs, small.inputs)
    for k in spec.k_values:
        assert data.targets[k].shape == (12, 1, n // k, n // k)
        assert data.rollouts[k].shape == (12, 9, 1, n // k, n // k)
        np.testing.assert_allclose(data.targets[k], restrict(data.fine.astype(np.float64), k), atol=1e-5)
        np.testing.assert_array_equal(data.rollouts[k][:, 1], data.targets[k])
        np.testing.assert_allclose(data.rollouts[k][:, 0], restrict(data.inputs.astype(np.float64), k), atol=1e-5)
        # snapshots of a trajectory are `gap` horizons apart: rollouts continue into the next sample
        np.testing.assert_array_equal(data.rollouts[k][0, task.gap], data.rollouts[k][1, 0])
    assert data.meta["kmax_eta_mean"] >= task.min_kmax_eta


def test_rollout_length_is_a_field():
    """``rollout`` sets the stored trajectory length and the scored horizons (powers of two
    below it, and itself); the default keeps the former 8 horizons."""
    assert Turbulence.sized("smoke").rollout_horizons == (1, 2, 4, 8)
    assert Turbulence(size="smoke", rollout=32).spec().rollout_horizons == (1, 2, 4, 8, 16, 32)
    assert Turbulence(size="smoke", rollout=12).rollout_horizons == (1, 2, 4, 8, 12)
    assert Turbulence(size="smoke", rollout=1).rollout_horizons == (1,)
    with pytest.raises(ValueError, match="rollout"):
        Turbulence(size="smoke", rollout=0)
    short = dataclasses.replace(Turbulence.sized("smoke"), spinup=0.5, snapshots=1, rollout=3, n_train=1,
                                n_test=1, n_val=1)
    d = short.generate(1, seed=0)
    assert d.rollouts[4].shape == (1, 4, 1, short.n // 4, short.n // 4)
    np.testing.assert_array_equal(d.rollouts[4][:, 1], d.targets[4])


def test_fine_solve_reproduces_the_targets(task, data):
    out = task.spec().fine_solve(data.inputs[:3])
    assert out.shape == data.fine[:3].shape
    # float32 storage of the input is the only difference from the generator's path
    assert rel(restrict(out, 4), data.targets[4][:3]) < 1e-4


def test_under_resolved_grid_is_refused():
    with pytest.raises(ValueError, match="under-resolves"):
        Turbulence(re=1e4, size="smoke", resolution=64).generate(1, seed=0)
    assert Turbulence(re=1e4, size="small").n >= 256  # the automatic grid resolves it


def test_circulation_law_round_off_on_truth_and_coarse_solvers_large_on_an_offset(task, data):
    """The domain mean of the vorticity of a periodic flow is zero: the filtered truth
    scores the float32 round-off of its storage (measured <= 1e-8 on small); every coarse
    solver keeps its input's mean (float32 round-off, <= 1e-9) times exp(-drag dT); an
    offset of c rms scores |c|."""
    spec = task.spec()
    (metric,) = [m for m in task.metrics if m.name == "circulation"]
    assert metric.group == "physics" and metric.headline
    fine = data.fine.astype(np.float64)
    assert np.all(tm.circulation(fine, data.inputs, 1) < 1e-7)  # the fine solution itself
    for k in (4, 8, 16):
        truth = data.targets[k]
        assert np.all(metric.fn(Prediction(truth), truth, data.inputs, k, spec) < 1e-7)
        w0 = restrict(data.inputs.astype(np.float64), k)
        rms = np.sqrt((w0**2).mean(axis=(1, 2, 3)))
        decayed = w0.mean(axis=(1, 2, 3)) * math.exp(-task.drag * task.horizon)  # d<w>/dt = -drag <w>
        for family, cs in spec.coarse_solvers.items():
            out = cs.solve(data.inputs, k, **cs.params)
            # each scheme keeps the (round-off) mean of its input, decayed by the drag
            np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), decayed, rtol=0, atol=1e-13 * rms.max())
            assert np.all(metric.fn(Prediction(out), truth, data.inputs, k, spec) < 1e-7), (family, k)
        for c in (0.1, -2.0):
            offset = truth.astype(np.float64) + c * rms[:, None, None, None]
            np.testing.assert_allclose(metric.fn(Prediction(offset), truth, data.inputs, k, spec), abs(c), rtol=1e-6)
        assert np.all(metric.fn(Prediction(0 * truth), truth, data.inputs, k, spec) == 0.0)  # no law broken


def test_spectrum_error_metric(task, data):
    spec = task.spec()
    (metric,) = [m for m in task.metrics if m.name == "spectrum_err"]
    truth = data.targets[4]
    assert np.all(metric.fn(Prediction(truth), truth, data.inputs, 4, spec) < 1e-12)
    doubled = metric.fn(Prediction(2 * truth), truth, data.inputs, 4, spec)
    assert np.all(doubled == pytest.approx(math.log10(4), rel=1e-9))



def test_residual_is_differentiable_and_smaller_on_truth(task, data, one_torch_thread):
    res, k = task.spec().residual, 4
    x = torch.as_tensor(data.inputs[:4])
    truth = torch.as_tensor(data.targets[k][:4], dtype=torch.float64).requires_grad_(True)
    r_true = res(truth, x, k)
    assert r_true.shape == truth.shape
    r_true.pow(2).mean().backward()
    assert truth.grad is not None and torch.isfinite(truth.grad).all() and truth.grad.abs().sum() > 0
    persistence = torch.as_tensor(data.rollouts[k][:4, 0], dtype=torch.float64)
    # the truth is much closer to the coarse dynamics' image of the input than persistence
    assert r_true.pow(2).mean() < 0.5 * res(persistence, x, k).pow(2).mean()


def test_residual_memo_of_forward_shots_changes_nothing(task, data, one_torch_thread):
    """The memoised forward half-shots give the residual computed from scratch; in
    another batch up to the time-step error (a batch shares its CFL step count)."""
    res, k = task.spec().residual, 4
    x = torch.as_tensor(data.inputs[:4])
    u = torch.as_tensor(data.targets[k][:4], dtype=torch.float64)
    tm._SHOTS.clear()
    fresh = res(u, x, k)
    assert len(tm._SHOTS) == 4
    again = res(u, x, k)  # every shot from the memo
    torch.testing.assert_close(again, fresh, rtol=0, atol=0)
    mixed = res(u[[2, 0]], x[[2, 0]], k)  # another batch, shots from the memo
    tm._SHOTS.clear()
    torch.testing.assert_close(mixed, res(u[[2, 0]], x[[2, 0]], k), rtol=1e-6, atol=1e-9)


def test_persistence_returns_the_coarse_state_and_scores_like_the_stored_rollout_start(task, data):
    """`persistence` predicts R_k of the input and leaves a coarse state unchanged; its
    error is that of the filtered state at t against the filtered state at t + dT."""
    from methods.persistence import Persistence

    spec = task.spec()
    m = Persistence()
    assert m.not_applicable(spec) is None
    m.fit(data, spec, None, None)  # learns nothing: keeps the spec, whose restriction it applies
    for k in (4, 8):
        pred = m.predict(data.inputs, k).mean
        np.testing.assert_array_equal(pred, restrict(data.inputs.astype(np.float64), k))
        np.testing.assert_array_equal(m.advance(pred, k).mean, pred)
        assert rel(pred, data.targets[k]) == pytest.approx(rel(data.rollouts[k][:, 0], data.targets[k]), rel=1e-5)


def test_the_dns_family_at_k1_is_the_fine_solver(task, data):
    """The ladder's ``dns`` family is the fine solver on a coarser grid: at k = 1 it
    reproduces the stored targets (float32 storage); at k = 4 it is a coarse solver."""
    cs = task.spec().coarse_solvers["dns"]
    out = cs.solve(data.inputs[:2], 1, **cs.params)
    assert out.shape == data.inputs[:2].shape and rel(restrict(out, 4), data.targets[4][:2]) < 1e-5
    assert 1e-3 < rel(cs.solve(data.inputs[:2], 4, **cs.params), data.targets[4][:2]) < 1


def test_unfilter_is_the_band_limited_inverse_of_the_block_average():
    from tasks.numerics.spectral import unfilter

    rng = np.random.default_rng(3)
    m, k = 16, 4
    ch = np.fft.rfft2(rng.standard_normal((2, m, m)))
    ch[:, m // 2, :] = ch[:, :, m // 2] = 0  # R_k of a band-limited field has no Nyquist modes
    c = np.fft.irfft2(ch, s=(m, m))
    np.testing.assert_allclose(restrict(unfilter(c, k), k), c, atol=1e-12)  # a right inverse of R_k
    u = resample(rng.standard_normal((2, m, m)), m * k)  # band-limited below the coarse Nyquist wavenumber
    np.testing.assert_allclose(unfilter(restrict(u, k), k), u, atol=1e-12)  # and a left inverse on the band
    # the continuous sinc of `box_transfer` is not the discrete box: deconvolving with it misses
    from tasks.numerics.spectral import box_transfer

    wrong = resample(np.fft.irfft2(np.fft.rfft2(restrict(u, k)) / box_transfer(m), s=(m, m)), m * k)
    assert rel(wrong, u) > 1e-3


def test_the_floor_is_exact_on_a_band_limited_state_and_beats_every_coarse_solver(task, data):
    """The coarse-information floor (``dns_floor``): from a state that ``R_k`` determines
    (band-limited below the coarse Nyquist wavenumber) it is the fine solve itself; on the
    data it beats the LES at every k (what it misses is what ``R_k`` cannot carry)."""
    spec, n = task.spec(), task.n
    floor = spec.coarse_solvers["floor"]
    assert floor.reference  # left out of the classical error-cost ladder
    k = 4
    state = resample(smooth_field(n // k, seed=2, kmax=n // (2 * k) - 2), n)[None, None]
    want = restrict(spec.fine_solve(state), k)
    np.testing.assert_allclose(floor.solve(state, k), want, atol=1e-9 * np.abs(want).max())
    les = spec.coarse_solvers["spectral"]
    for k in (4, 8):
        truth = data.targets[k][:4]
        assert rel(floor.solve(data.inputs[:4], k), truth) < rel(les.solve(data.inputs[:4], k, **les.params), truth)
