"""Validation of the convection task: linear stability, heat transport, incompressibility,
time-step accuracy, data contract and physics hooks (docs/convection.md)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from nskernel import K_VALUES, Dataset, Prediction
from nskernel.grid import restrict
from tasks.convection.boussinesq import SpectralFD
from tasks.convection.differentiable import TorchSpectralFD
from tasks.convection.physics import divergence, mass_flux, nusselt, plate_nusselt, profile_err
from tasks.convection.task import DT_TOL, Convection, auto_height

RA_C_NO_SLIP, K_C_NO_SLIP = 1707.762, 3.1163
RA_C_FREE, K_C_FREE = 27.0 * math.pi**4 / 4.0, math.pi / math.sqrt(2.0)


def growth_rate(ra: float, kc: float, plates: str, x_scheme: str = "spectral", h: int = 16) -> float:
    """Growth rate of the kx = kc mode (box = one critical wavelength) from a 1e-7 seed,
    measured over t in [10, 20] after the decaying modes are gone."""
    s = SpectralFD(h, 16, ra, 1.0, 2.0 * math.pi / kc, plates=plates, x_scheme=x_scheme)
    state = s.initial_state(1, np.random.default_rng(0), 0.0)
    state[1, 0, :h, 1] = 1e-7 * np.sin(math.pi * (np.arange(h) + 0.5) / h)
    state = s.advance(state, 10.0, 0.04)
    a0 = np.abs(state[1, 0, :h, 1]).max()
    state = s.advance(state, 10.0, 0.04)
    return math.log(np.abs(state[1, 0, :h, 1]).max() / a0) / 10.0


# -- linear onset -----------------------------------------------------------------------
@pytest.mark.parametrize("x_scheme", ["spectral", "fd2"])
def test_onset_no_slip(x_scheme: str) -> None:
    """Decay at 0.9 Ra_c, growth at 1.1 Ra_c (no-slip, k_c = 3.117); the zero crossing of the
    growth rate lies within 2% of 1707.76 already on 16 rows."""
    lo, hi = (growth_rate(f * RA_C_NO_SLIP, K_C_NO_SLIP, "no-slip", x_scheme) for f in (0.9, 1.1))
    assert lo < 0.0 < hi
    ra_c = RA_C_NO_SLIP * (0.9 + 0.2 * (-lo) / (hi - lo))
    assert abs(ra_c / RA_C_NO_SLIP - 1.0) < 0.02


@pytest.mark.parametrize("factor", [0.9, 1.1, 3.0])
def test_growth_rate_stress_free_exact(factor: float) -> None:
    """Stress-free plates: the discrete system has the closed-form growth rate
    ``cos(pi dz/2) k/q - q^2/sqrt(Ra)`` (Pr = 1) with ``q^2 = k^2 + (2 sin(pi dz/2)/dz)^2``,
    which tends to the continuum ``k/q - q^2/sqrt(Ra)`` (onset 657.5 at k = 2.221)."""
    ra, h = factor * RA_C_FREE, 16
    dz = 1.0 / h
    q2 = K_C_FREE**2 + (2.0 * math.sin(0.5 * math.pi * dz) / dz) ** 2
    exact = math.cos(0.5 * math.pi * dz) * K_C_FREE / math.sqrt(q2) - q2 / math.sqrt(ra)
    assert growth_rate(ra, K_C_FREE, "stress-free") == pytest.approx(exact, abs=1e-5)
    assert (exact > 0) == (factor > 1)


# -- heat transport ---------------------------------------------------------------------
def test_nusselt_formulas_on_constructed_field() -> None:
    """Volume and plate Nusselt numbers of a field with known <w theta> and wall gradient."""
    h, w, ra, a, b, c = 32, 64, 1e6, 0.2, 0.05, 0.3
    s = SpectralFD(h, w, ra, 1.0, 2.0)
    z, zf, dz = (np.arange(h) + 0.5) / h, np.arange(h + 1) / h, 1.0 / h
    state = np.zeros((3, 1, h + 1, s.nk), dtype=complex)
    state[1, 0, :h, 0] = -a * np.sin(2.0 * math.pi * z)  # mean theta: cool below mid-depth, warm above
    state[1, 0, :h, 1] = 0.5 * b * np.sin(math.pi * z)  # b cos(kx) sin(pi z)
    state[2, 0, :, 1] = 0.5 * c * np.sin(math.pi * zf)  # w = c cos(kx) sin(pi z) on the faces
    nu = s.nusselt(state)
    vol = 1.0 + math.sqrt(ra) * b * c * math.cos(0.5 * math.pi * dz) / 4.0
    plate = 1.0 + 2.0 * a * math.sin(math.pi * dz) / dz
    assert nu["volume"][0] == pytest.approx(vol, rel=1e-12)
    assert nu["bottom"][0] == pytest.approx(plate, rel=1e-12)
    assert nu["top"][0] == pytest.approx(plate, rel=1e-12)
    fields = s.to_fields(state)
    assert plate_nusselt(fields)[0] == pytest.approx(plate, rel=1e-12)
    x = np.arange(w) * 2.0 / w  # the grid of the Fourier coefficients (origin arbitrary)
    fields[:, 2] = c * np.sin(math.pi * z)[:, None] * np.cos(math.pi * x)[None, :]
    assert nusselt(fields, ra, 1.0)[0] == pytest.approx(1.0 + math.sqrt(ra) * b * c / 4.0, rel=1e-12)


def test_nusselt_balance_steady_rolls() -> None:
    """Ra = 1e4 settles into steady rolls by t = 60 (Nu = 2.69 on 16 x 32), where the
    volume and both plate Nusselt numbers must agree (measured: to 1e-5)."""
    s = SpectralFD(16, 32, 1e4, 1.0, 2.0)
    state = s.advance(s.initial_state(1, np.random.default_rng(1)), 60.0, 0.05)
    nu = s.nusselt(state)
    assert nu["bottom"][0] > 2.0
    assert nu["volume"][0] == pytest.approx(nu["bottom"][0], rel=1e-3)
    assert nu["top"][0] == pytest.approx(nu["bottom"][0], rel=1e-3)


@pytest.mark.slow
def test_nusselt_balance_developed() -> None:
    """Time averages over 150 free-fall times of developed Ra = 1e5 convection (smoke grid):
    volume and plate Nusselt numbers within 3%."""
    task = Convection.sized("smoke")
    s = task.solver()
    state = s.advance(s.initial_state(1, np.random.default_rng(2)), 30.0, task.time_step)
    acc = {"volume": [], "bottom": [], "top": []}
    for _ in range(300):
        state = s.advance(state, 0.5, task.time_step)
        for key, v in s.nusselt(state).items():
            acc[key].append(v[0])
    mean = {key: float(np.mean(v)) for key, v in acc.items()}
    assert mean["volume"] == pytest.approx(mean["bottom"], rel=0.03)
    assert mean["top"] == pytest.approx(mean["bottom"], rel=0.03)


# -- incompressibility and backends -----------------------------------------------------
@pytest.mark.parametrize("x_scheme,cs", [("spectral", 0.0), ("fd2", 0.0), ("spectral", 0.17)])
def test_divergence_round_off(x_scheme: str, cs: float) -> None:
    s = SpectralFD(32, 64, 1e6, 1.0, 2.0, x_scheme=x_scheme, cs=cs)
    state = s.advance(s.initial_state(2, np.random.default_rng(3), 0.3), 5.0, 0.02)
    grad = np.abs(s._dx * state[0, :, :-1]).max()
    assert grad > 1e-2
    assert np.abs(s.divergence(state)).max() < 1e-12 * grad


@pytest.mark.parametrize("x_scheme", ["spectral", "fd2"])
def test_inviscid_energy_conserved(x_scheme: str) -> None:
    """With nu = kappa = 0 the semi-discrete scheme conserves ``|u|^2/2 - theta^2/2``
    (advection, pressure and the buoyancy exchange cancel exactly); what remains is the
    RK4 error, which falls as dt^5 per unit time."""
    s = SpectralFD(16, 32, 1e30, 1.0, 2.0, x_scheme=x_scheme)
    state = s.advance(s.initial_state(1, np.random.default_rng(3), 0.3), 3.0, 0.005)

    def energy(st: np.ndarray) -> float:
        p = np.fft.irfft(st, n=s.w, axis=-1, norm="forward")
        return 0.5 * float((p[0, :, :-1] ** 2).sum() + (p[2] ** 2).sum() - (p[1, :, :-1] ** 2).sum())

    e0 = energy(state)
    drift = [abs(energy(s.advance(state, 1.0, dt)) / e0 - 1.0) for dt in (0.01, 0.005)]
    assert drift[1] < 1e-6
    assert drift[0] / drift[1] > 16.0


def test_torch_backend_matches_numpy() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny FFTs: thread wake-ups would dominate on a busy machine
    try:
        _compare_backends()
    finally:
        torch.set_num_threads(threads)


def _compare_backends() -> None:
    a = SpectralFD(16, 32, 1e5, 1.0, 2.0, cs=0.1)
    b = SpectralFD(16, 32, 1e5, 1.0, 2.0, cs=0.1, backend="torch")
    sa = a.initial_state(2, np.random.default_rng(4), 0.3)
    sb = b.ops.asarray(sa, complex_=True)
    for _ in range(10):
        sa, sb = a.step(sa, 0.02), b.step(sb, 0.02)
    assert np.abs(a.to_fields(sa) - b.to_fields(sb)).max() < 1e-12


# -- time step ----------------------------------------------------------------------------
def test_time_step_meets_tolerance_and_is_near_largest() -> None:
    """The smoke step keeps the one-horizon error against a dt/8 reference below DT_TOL;
    twice the step does not (so it is within a factor 2 of the largest acceptable one)."""
    task = Convection.sized("smoke")
    s, dt = task.solver(), task.time_step
    state = s.advance(s.initial_state(1, np.random.default_rng(5)), 20.0, dt)
    ref = s.to_fields(s.advance(state, task.horizon, dt / 8))

    def err(step: float) -> float:
        out = s.to_fields(s.advance(state, task.horizon, step))
        return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))

    assert err(dt) < DT_TOL
    assert not err(2.0 * dt) < DT_TOL  # NaN (unstable) also fails


# -- data contract ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def task() -> Convection:
    # short horizons keep the fixture cheap; the contract does not depend on them
    return dataclasses.replace(Convection.sized("smoke"), spinup=8.0, horizon=0.5, spacing=0.5,
                               samples_per_run=4, n_train=4, n_test=4)


@pytest.fixture(scope="module")
def data(task: Convection) -> Dataset:
    return task.generate(6, seed=7)


def test_spec_protocol(task: Convection) -> None:
    spec = Convection.sized("smoke").spec()
    assert spec.in_channels == spec.out_channels == 3 and spec.out_names == ("T", "u", "w")
    assert spec.time_dependent and spec.rollout_horizons == (1, 2, 4, 8)
    assert all(n % 16 == 0 for n in spec.fine_shape)
    assert set(spec.coarse_solvers) == {"fv", "spectral"}
    assert all(sol.advance is not None and {"cs", "cfl"} <= set(sol.params) for sol in spec.coarse_solvers.values())
    assert {m.name for m in Convection.metrics} == {"mass_flux", "nusselt_err", "profile_err"}
    small = Convection.sized("small")
    assert small.n_train % small.samples_per_run == 0  # the train/test split falls between runs
    assert auto_height(1e8) >= 2 * auto_height(1e6) and dataclasses.replace(small, ra=1e8).shape[0] == auto_height(1e8)


def test_generate_shapes_and_restriction(task: Convection, data: Dataset) -> None:
    h, w = task.shape
    assert data.inputs.shape == (6, 3, h, w) and data.inputs.dtype == np.float32
    for k in K_VALUES:
        assert data.targets[k].shape == (6, 3, h // k, w // k) and data.targets[k].dtype == np.float32
        assert data.rollouts[k].shape == (6, 9, 3, h // k, w // k)
        np.testing.assert_allclose(data.targets[k], restrict(data.fine.astype(np.float64), k), atol=2e-7)
        np.testing.assert_allclose(data.rollouts[k][:, 0], restrict(data.inputs.astype(np.float64), k), atol=2e-7)
        np.testing.assert_array_equal(data.rollouts[k][:, 1], data.targets[k])
    np.testing.assert_array_equal(data.inputs[1], data.fine[0])  # consecutive samples of run 0
    t = data.inputs[:, 0]
    assert t.min() > -0.05 and t.max() < 1.05  # temperature stays within the plate values
    assert np.abs(data.inputs[:, 1:]).max() > 0.05  # convecting, not conducting


def test_generate_deterministic_prefix(task: Convection, data: Dataset) -> None:
    again = task.generate(3, seed=7)  # fewer samples, fewer runs: the same numbers
    np.testing.assert_array_equal(again.inputs, data.inputs[:3])
    np.testing.assert_array_equal(again.rollouts[8], data.rollouts[8][:3])
    other = task.generate(1, seed=8)
    assert not np.allclose(other.inputs[0], data.inputs[0])


def test_fine_solve_reproduces_targets(task: Convection, data: Dataset) -> None:
    out = task.spec().fine_solve(data.inputs[:2])
    err = np.linalg.norm(restrict(out, 4) - data.targets[4][:2]) / np.linalg.norm(data.targets[4][:2])
    assert err < 1e-6  # float32 storage of the inputs is the only difference


# -- physics hooks ------------------------------------------------------------------------
def test_mass_flux_law_round_off_on_truth_and_coarse_solvers_large_on_net_fluxes(task: Convection,
                                                                                 data: Dataset) -> None:
    """Continuity and impermeable plates: every row of R_k w has zero mean and every
    column of R_k u the same mean. The filtered truth scores the float32 round-off of its
    storage (measured <= 2e-8 on small), the coarse solvers float64 round-off; a uniform
    w of c U scores c, a column-flux wave c U sin(2 pi x / aspect) scores c / sqrt(2)."""
    spec = task.spec()
    (metric,) = [m for m in task.metrics if m.name == "mass_flux"]
    assert metric.group == "physics" and metric.headline
    fine = data.fine.astype(np.float64)
    assert np.all(mass_flux(fine, data.inputs, 1) < 1e-6)  # the fine solver's own state
    for k in K_VALUES:
        y = data.targets[k]
        assert np.all(metric.fn(Prediction(y), y, data.inputs, k, spec) < 1e-6)
        if k == 4:
            for family, sol in spec.coarse_solvers.items():
                out = sol.solve(data.inputs[:2], k, **sol.params)
                assert np.all(metric.fn(Prediction(out), y[:2], data.inputs[:2], k, spec) < 1e-12), family
        u_rms = np.sqrt((restrict(data.inputs[:, 1:].astype(np.float64), k) ** 2).mean(axis=(1, 2, 3)))
        lifted = y.astype(np.float64)
        lifted[:, 2] += 0.1 * u_rms[:, None, None]
        np.testing.assert_allclose(metric.fn(Prediction(lifted), y, data.inputs, k, spec), 0.1, rtol=1e-5)
        wave = y.astype(np.float64)
        x = (np.arange(y.shape[-1]) + 0.5) / y.shape[-1]
        wave[:, 1] += 0.3 * u_rms[:, None, None] * np.sin(2 * np.pi * x)
        np.testing.assert_allclose(metric.fn(Prediction(wave), y, data.inputs, k, spec), 0.3 / np.sqrt(2), rtol=1e-5)
        still = y.astype(np.float64)
        still[:, 1:] = 0.0
        assert np.all(metric.fn(Prediction(still), y, data.inputs, k, spec) == 0.0)  # rest breaks no law


def _relative_divergence(y: torch.Tensor, aspect: float) -> float:
    """||du/dx + dw/dz|| / sqrt(||du/dx||^2 + ||dw/dz||^2): ~0.7 for unrelated u and w."""
    u_only, w_only = y.clone(), y.clone()
    u_only[:, 2], w_only[:, 1] = 0.0, 0.0
    scale = torch.cat([divergence(u_only, aspect), divergence(w_only, aspect)]).norm()
    return float(divergence(y, aspect).norm() / scale)


def test_divergence_hook_small_on_truth_and_differentiable(task: Convection, data: Dataset) -> None:
    spec = task.spec()
    y = torch.tensor(data.targets[4], dtype=torch.float64, requires_grad=True)
    d = spec.divergence(y, 4)
    assert d.shape == (6, *spec.coarse_shape(4))
    d.pow(2).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
    assert _relative_divergence(y.detach(), task.aspect) < 0.2  # O(h^2) on the filtered truth
    assert _relative_divergence(torch.randn_like(y), task.aspect) > 0.5


def test_residual_hook_truth_vs_wrong(task: Convection, data: Dataset) -> None:
    spec, k = task.spec(), 4
    y = torch.tensor(data.targets[k], dtype=torch.float64, requires_grad=True)
    r = spec.residual(y, data.inputs, k)
    assert r.shape == (6, *spec.coarse_shape(k))
    r.pow(2).mean().backward()
    assert y.grad is not None
    persistence = torch.tensor(restrict(data.inputs.astype(np.float64), k))
    shuffled = torch.tensor(data.targets[k][::-1].copy(), dtype=torch.float64)
    r_true = float(r.detach().norm())
    assert r_true < 0.5 * float(spec.residual(shuffled, data.inputs, k).norm())
    assert r_true < float(spec.residual(persistence, data.inputs, k).norm())


def test_task_metrics(task: Convection, data: Dataset) -> None:
    spec, y = task.spec(), data.targets[8]
    metrics = {m.name: m for m in task.metrics if m.group == "task"}  # errors against the truth
    for m in metrics.values():
        np.testing.assert_array_equal(m.fn(Prediction(y), y, data.inputs, 8, spec), 0.0)
    conduction = y.copy()
    conduction[:, 0] = 1.0 - (np.arange(y.shape[-2]) + 0.5)[:, None] / y.shape[-2]
    np.testing.assert_allclose(profile_err(conduction, y), 1.0, rtol=1e-6)
    still = y.copy()
    still[:, 1:] = 0.0
    np.testing.assert_allclose(metrics["nusselt_err"].fn(Prediction(still), y, data.inputs, 8, spec),
                               1.0 - 1.0 / nusselt(y, task.ra, task.pr), rtol=1e-6)


@pytest.mark.parametrize("family", ["fv", "spectral"])
def test_coarse_solvers(task: Convection, data: Dataset, family: str) -> None:
    """Shapes, finiteness, and better than persistence at k = 4 on one horizon."""
    sol, k = task.spec().coarse_solvers[family], 4
    out = sol.solve(data.inputs[:2], k, **sol.params)
    assert out.shape == data.targets[k][:2].shape and np.isfinite(out).all()
    np.testing.assert_array_equal(sol.advance(restrict(data.inputs[:2].astype(np.float64), k), k, **sol.params), out)
    y = data.targets[k][:2]
    persistence = restrict(data.inputs[:2].astype(np.float64), k)
    assert np.linalg.norm(out - y) < np.linalg.norm(persistence - y)


# -- differentiable coarse solvers (the `closure` method's) -------------------------------
@pytest.mark.parametrize("family", ["spectral", "fv"])
def test_differentiable_coarse_solver_equals_advance(task: Convection, data: Dataset, family: str,
                                                    one_torch_thread: None) -> None:
    """The torch solver against `advance` at every k (2 x 8 cells at k = 16): the same
    per-sample steps, the same fields to round-off (measured <= 3e-16 relative), results
    independent of the batch; another step count is a different solve."""
    sol = task.spec().coarse_solvers[family]
    for k in K_VALUES:
        state = restrict(data.inputs[:3].astype(np.float64), k)
        ref = sol.advance(state, k, **sol.params)
        out, steps = sol.differentiable(torch.as_tensor(state), **sol.params)
        assert out.dtype == torch.float64 and out.shape == ref.shape and steps >= 1
        assert np.abs(out.numpy() - ref).max() < 1e-12 * np.abs(ref).max(), k
        alone, _ = sol.differentiable(torch.as_tensor(state[1:2]), **sol.params)
        assert torch.equal(alone[0], out[1])
        other, _ = sol.differentiable(torch.as_tensor(state), steps=steps - 1 or 2, **sol.params)  # k=16: 1 step
        assert np.abs(other.numpy() - ref).max() > 1e-8 * np.abs(ref).max(), k


def test_differentiable_coarse_solver_gradients_and_closure_hook(task: Convection, data: Dataset,
                                                                 one_torch_thread: None) -> None:
    """gradcheck on the 2 x 8 grid (k = 16) over two steps (measured: analytic and
    central-difference Jacobians agree to 8e-11); gradients reach a closure's parameter;
    a zero closure is the solver bit for bit; the closure's rate enters the state with
    `from_fields` semantics (projected velocity, T's rate as theta's)."""
    sol = task.spec().coarse_solvers["spectral"]
    state = torch.as_tensor(restrict(data.inputs[:1].astype(np.float64), 16)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s: sol.differentiable(s, steps=2)[0], (state,), eps=1e-6, atol=1e-6)
    coarse = torch.as_tensor(restrict(data.inputs[:2].astype(np.float64), 8))
    weight = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    for steps in (2, None):
        out = sol.differentiable(coarse, closure=lambda f: weight * f, steps=steps)[0]
        (grad,) = torch.autograd.grad(out.square().sum(), weight)
        assert torch.isfinite(grad) and grad.abs() > 0
        plain = sol.differentiable(coarse, steps=steps)[0]
        assert torch.equal(plain, sol.differentiable(coarse, closure=lambda f: 0.0 * f, steps=steps)[0])
    rest = torch.zeros(1, 3, 4, 16, dtype=torch.float64)  # at rest: |S| = 0, sqrt's kink
    noise = torch.rand(4, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rest[:, 0] = 1.0 - (torch.arange(4, dtype=torch.float64)[:, None] + 0.5) / 4 + 0.01 * noise
    rest.requires_grad_(True)
    sol.differentiable(rest, steps=2)[0].square().sum().backward()
    assert torch.isfinite(rest.grad).all()
    s = TorchSpectralFD(8, 32, task.ra, task.pr, task.aspect, plates=task.plates, x_scheme="spectral", cs=0.17)
    rate = torch.randn(2, 3, 8, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    conduction = torch.zeros_like(rate)
    conduction[:, 0] = 1.0 - (torch.arange(8, dtype=torch.float64)[:, None] + 0.5) / 8
    tend = s.tendency_state(rate)
    torch.testing.assert_close(tend, s.from_fields(rate + conduction), rtol=0, atol=1e-13)
    assert s.divergence(tend).abs().max() < 1e-12 * tend[0].abs().max()
