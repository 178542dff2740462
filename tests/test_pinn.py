"""PINN / BPINN baselines: the HMC sampler, the adaptive weights, the DeepXDE solve, the
continuous-PDE contract of Darcy and convection, and the smoke cell end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from methods.pinn.bpinn import inverse_dirichlet
from methods.pinn.hmc import hmc
from methods.pinn.pinn import annealed_weights, import_deepxde, solve_pinn
from nskernel import Context, PointSet, PointwisePDE
from tasks.convection.pointwise import state_derivatives
from tasks.darcy.pointwise import darcy_pointwise
from tasks.darcy.task import Darcy
from tasks.numerics.pointwise import grad


# ------------------------------------------------------------------------------ HMC
def test_hmc_recovers_a_correlated_gaussian_posterior():
    """Mean and covariance of an anisotropic, correlated 2D Gaussian within Monte Carlo
    error (3-4 standard errors for the ~600+ effective draws of 1200)."""
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64)
    std = torch.tensor([1.0, 0.3], dtype=torch.float64)
    rho = 0.8
    cov = torch.outer(std, std) * torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    prec = torch.linalg.inv(cov)
    chain = hmc(lambda th: 0.5 * (th - mean) @ prec @ (th - mean), torch.zeros(2, dtype=torch.float64),
                n_samples=1200, n_warmup=200, n_leapfrog=5, generator=torch.Generator().manual_seed(1),
                step_size=0.3)
    s = chain.samples
    assert s.shape == (1200, 2) and 0.5 < chain.accept_rate < 0.98
    est_std = s.std(dim=0)
    assert torch.all((s.mean(dim=0) - mean).abs() < 0.12 * std)
    assert torch.all((est_std / std - 1).abs() < 0.12), est_std
    assert abs(float(torch.corrcoef(s.T)[0, 1]) - rho) < 0.05


def test_hmc_potential_scale_sets_the_spread():
    """A potential twice as steep halves the variance: the sampler targets exp(-U)."""
    def run(c: float) -> float:
        chain = hmc(lambda th: c * 0.5 * (th**2).sum(), torch.zeros(1, dtype=torch.float64), n_samples=1000,
                    n_warmup=100, n_leapfrog=4, generator=torch.Generator().manual_seed(2))
        return float(chain.samples.var())

    assert run(1.0) == pytest.approx(1.0, rel=0.15)
    assert run(2.0) == pytest.approx(0.5, rel=0.15)


def test_hmc_warmup_cut_short_by_time_still_samples():
    chain = hmc(lambda th: 0.5 * (th**2).sum(), torch.zeros(3, dtype=torch.float64), n_samples=50, n_warmup=10_000,
                n_leapfrog=3, generator=torch.Generator().manual_seed(3), step_size=0.5, warmup_time_s=0.05)
    assert chain.warmup_done < 10_000 and chain.samples.shape == (50, 3) and chain.stopped == "completed"


# ------------------------------------------------------------------ adaptive weights
def test_annealing_raises_the_weight_of_a_term_with_weak_gradients():
    g = torch.linspace(-1.0, 1.0, 101)
    strong, weak = 10.0 * g, 0.1 * g
    for rule in ("grad_norm", "max_mean"):
        up = annealed_weights([1.0, 1.0], [strong, weak], alpha=0.5, rule=rule)
        assert up[1] > 1.0, rule
        # grad_norm: weighted gradient norms are equalised at the fixed point
        if rule == "grad_norm":
            fixed = annealed_weights([1.0, 1.0], [strong, weak], alpha=1.0, rule=rule)
            assert fixed[0] * strong.norm() == pytest.approx(float(fixed[1] * weak.norm()))
    assert annealed_weights([1.0, 5.0], [strong, weak], alpha=0.5, rule="max_mean")[0] == 1.0  # reference
    down = annealed_weights([1.0, 1.0], [weak, strong], alpha=0.5, rule="grad_norm")
    assert down[1] < down[0]
    with pytest.raises(ValueError, match="grad_norm"):
        annealed_weights([1.0], [g], alpha=0.5, rule="bogus")


def test_inverse_dirichlet_weights_the_weak_term_up():
    g = torch.randn(200, generator=torch.Generator().manual_seed(0))
    w = inverse_dirichlet([g, 0.25 * g, torch.zeros(200)])
    assert w[0] == 1.0 and w[1] == pytest.approx(4.0) and w[2] == 1.0


def test_deepxde_reads_loss_weights_at_every_step():
    """The callback mechanism relies on DeepXDE's PyTorch backend multiplying the loss
    terms by model.loss_weights when they are computed, not at compile time."""
    dde = import_deepxde()
    geom = dde.geometry.Interval(0.0, 1.0)
    x = np.linspace(0.1, 0.9, 5)[:, None]
    bc = dde.icbc.PointSetBC(np.array([[0.0]]), np.array([[1.0]]), component=0)
    data = dde.data.PDE(geom, lambda x, y: y - 2.0, [bc], num_domain=0, anchors=x)
    model = dde.Model(data, dde.nn.FNN([1, 4, 1], "tanh", "Glorot normal"))
    model.compile("adam", lr=1e-3, loss_weights=[1.0, 1.0], verbose=0)
    xt = data.train_x
    base = model.outputs_losses_train(xt, None, None)[1].detach()
    model.loss_weights = [1.0, 10.0]
    scaled = model.outputs_losses_train(xt, None, None)[1].detach()
    assert torch.allclose(scaled, base * torch.tensor([1.0, 10.0], dtype=base.dtype))


# ------------------------------------------------------------------------ the PINN
def poisson_1d(n: int = 64) -> PointwisePDE:
    """-u'' = pi^2 sin(pi x) on (0, 1), u(0) = u(1) = 0 as *soft* conditions (so the
    annealing has boundary terms to weight); exact u = sin(pi x)."""
    def residual(x, out, coeff):
        du = grad(out, x)
        return [-grad(du, x) - math.pi**2 * torch.sin(math.pi * x)]

    walls = PointSet("walls", np.array([[0.0], [1.0]]), np.zeros((2, 1)), (0,))
    centres = ((np.arange(n) + 0.5) / n)[:, None]
    return PointwisePDE(
        coords=("x",), bounds=((0.0, 1.0),), cells=(n,), outputs=("u",), residual_names=("poisson",),
        residual=residual, coefficients=lambda s, x: np.zeros((len(x), 0)), n_coefficients=0,
        eval_points=centres, to_field=lambda v, s: v[:, 0].reshape(1, 1, n), conditions=lambda s: [walls],
    )


def test_pinn_solves_1d_poisson_to_a_tight_tolerance():
    pde = poisson_1d()
    settings = {"adam_steps": 300, "lbfgs_steps": 300, "n_collocation": 64, "time_slices": 1,
                "max_solve_s": 120.0, "width": 20, "depth": 2, "modes": 1, "lr": 3e-3,
                "weighting": "grad_norm", "anneal_every": 50, "anneal_alpha": 0.1}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what the method does: small graphs run faster on one thread
    try:
        values, log = solve_pinn(pde, np.zeros((1, 1, 64)), settings, seed=0, ctx=Context(threads=1))
    finally:
        torch.set_num_threads(threads)
    exact = np.sin(np.pi * pde.eval_points[:, 0])
    err = np.linalg.norm(values[:, 0] - exact) / np.linalg.norm(exact)
    assert err < 1e-4, err  # measured 3e-6 (float32)
    assert log["weight_history"] and log["weights"][1] != 1.0  # the callback changed the BC weight


def test_bpinn_warmup_cut_by_the_clock_marks_the_solve_capped(monkeypatch):
    """A warm-up the time cap cut short changes every kept draw, so the solve must say
    so (the cell is then `truncated`, never a result that depends on the load)."""
    from methods.pinn import bpinn

    settings = {"map_steps": 20, "map_lbfgs": 5, "warmup": 40, "samples": 5, "leapfrog": 3, "n_collocation": 32,
                "time_slices": 1, "max_solve_s": 120.0, "width": 8, "depth": 1, "modes": 1, "lr": 3e-3,
                "prior_std": 1.0, "target_accept": 0.75, "adapt_every": 10, "adapt_every_hmc": 5,
                "adapt_alpha": 0.1}
    ctx = Context(threads=1)
    _, log = bpinn.solve_bpinn(poisson_1d(), np.zeros((1, 1, 64)), settings, seed=0, ctx=ctx)
    assert log["warmup"] == 40 and not log["time_capped"]
    monkeypatch.setattr(bpinn, "WARMUP_SHARE", 0.0)  # the warm-up's share of the clock is spent at once
    _, log = bpinn.solve_bpinn(poisson_1d(), np.zeros((1, 1, 64)), settings, seed=0, ctx=ctx)
    assert log["warmup"] < 40 and log["stopped"] == "completed" and log["time_capped"]


# ------------------------------------------------------------ continuous Darcy (mixed)
def darcy_setup(a_value: float | None = None):
    task = Darcy(resolution=16, n_train=1, n_test=1)
    pde = darcy_pointwise(task)
    rng = np.random.default_rng(0)
    sample = np.where(rng.random((1, 16, 16)) < 0.5, 12.0, 3.0) if a_value is None else np.full((1, 16, 16), a_value)
    x_np = pde.collocation(rng, 256)
    x = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
    coeff = torch.tensor(pde.coefficients(sample, x_np))
    return task, pde, sample, x_np, x, coeff


def test_darcy_mixed_residual_vanishes_on_an_exact_solution():
    """u = f x (1 - x) / (2 a), sigma = -a grad u solves the mixed system for constant a;
    scaling u (and sigma) by 1.1 leaves the Darcy law exact and breaks the balance by 10%."""
    task, pde, sample, _, x, coeff = darcy_setup(a_value=3.0)
    f, a = task.forcing, 3.0

    def exact(scale: float) -> torch.Tensor:
        u = scale * f * x[:, 0:1] * (1 - x[:, 0:1]) / (2 * a)
        sx = -scale * f * (1 - 2 * x[:, 0:1]) / 2
        return torch.cat([u, sx, torch.zeros_like(sx)], dim=1)

    bal, flux = pde.residual(x, exact(1.0), coeff)
    assert bal.abs().max() < 1e-12 and flux.abs().max() < 1e-12
    bal, flux = pde.residual(x, exact(1.1), coeff)
    assert torch.allclose(bal, torch.full_like(bal, 0.1)) and flux.abs().max() < 1e-12


def test_darcy_residual_with_a_two_phase_coefficient():
    """Pointwise: the Darcy law sees a of the fine cell containing each point (energy-
    weighted by sqrt(a_ref / a)), the balance law is div sigma - f."""
    _, pde, sample, x_np, x, coeff = darcy_setup()
    i, j = np.minimum((x_np[:, 1] * 16).astype(int), 15), np.minimum((x_np[:, 0] * 16).astype(int), 15)
    np.testing.assert_array_equal(coeff[:, 0].numpy(), sample[0, i, j])
    px, py = torch.pi * x[:, 0:1], torch.pi * x[:, 1:2]
    u = torch.sin(px) * torch.sin(py)
    a = coeff[:, 0:1]
    du = torch.cat([torch.pi * torch.cos(px) * torch.sin(py), torch.pi * torch.sin(px) * torch.cos(py)], dim=1)
    sigma = 0.3 * du  # not -a grad u: the Darcy residual is then (sigma + a grad u) sqrt(a_ref/a) / s_sigma
    bal, flux = pde.residual(x, torch.cat([u, sigma], dim=1), coeff)
    lap = -2 * torch.pi**2 * u
    assert torch.allclose(bal, (0.3 * lap - 1.0) / 1.0)
    expected = (sigma + a * du) * torch.sqrt(pde.notes["a_ref"] / a) / pde.notes["s_sigma"]
    assert torch.allclose(flux, expected)


def test_darcy_hard_constraint_and_output_field():
    task, pde, sample, _, _, _ = darcy_setup()
    walls = torch.tensor([[0.0, 0.3], [1.0, 0.7], [0.4, 0.0], [0.6, 1.0]], dtype=torch.float64)
    out = pde.apply(walls, torch.ones(4, 3, dtype=torch.float64))
    assert torch.all(out[:, 0] == 0) and torch.all(out[:, 1:] != 0)  # u = 0 on the walls, flux free
    values = np.arange(16 * 16 * 3, dtype=float).reshape(-1, 3)
    field = pde.to_field(values, sample)
    assert field.shape == (1, 16, 16)
    # row-major over (y, x): eval point r is the centre of cell (r // 16, r % 16)
    r = 37
    assert field[0, r // 16, r % 16] == values[r, 0]
    assert np.allclose(pde.eval_points[r], [(r % 16 + 0.5) / 16, (r // 16 + 0.5) / 16])


# ------------------------------------------------------------- continuous convection
def test_convection_state_derivatives_are_second_order():
    """FD derivatives of the anchored initial state against a smooth exact state."""
    aspect = 4.0

    def errors(h: int) -> np.ndarray:
        w = 4 * h
        z = ((np.arange(h) + 0.5) / h)[:, None]
        x = ((np.arange(w) + 0.5) * aspect / w)[None, :]
        kx = 2 * np.pi / aspect
        t = (1 - z) + 0.1 * np.sin(np.pi * z) * np.cos(kx * x)
        state = np.stack([t, np.zeros_like(t), np.zeros_like(t)])
        d = state_derivatives(state, aspect)
        exact = [-0.1 * kx * np.sin(np.pi * z) * np.sin(kx * x), -1 + 0.1 * np.pi * np.cos(np.pi * z) * np.cos(kx * x),
                 -0.1 * (np.pi**2 + kx**2) * np.sin(np.pi * z) * np.cos(kx * x)]
        return np.array([np.abs(d[1 + m] - exact[m])[2:-2].max() for m in range(3)])

    e1, e2 = errors(16), errors(32)
    assert np.all(e2 < 1e-2) and np.all(e1 / e2 > 3.5)  # ~4x per halving of h


def test_convection_conduction_state_is_a_steady_solution():
    """At rest with the conduction profile and a zero network, every residual vanishes,
    and the prediction is the input state (persistence)."""
    from tasks.convection.pointwise import convection_pointwise
    from tasks.convection.task import Convection

    task = Convection(ra=1e5, height=16, width=64, n_train=0, n_test=1, n_val=0)
    pde = convection_pointwise(task)
    z = ((np.arange(16) + 0.5) / 16)[:, None]
    state = np.stack([np.broadcast_to(1 - z, (16, 64)), np.zeros((16, 64)), np.zeros((16, 64))])
    x_np = pde.collocation(np.random.default_rng(0), 200, time_slices=2)
    x = torch.tensor(x_np, requires_grad=True)
    coeff = torch.tensor(pde.coefficients(state, x_np))
    out = pde.apply(x, torch.zeros(len(x_np), 4, dtype=torch.float64))
    for r in pde.residual(x, out, coeff):
        assert r.abs().max() < 1e-10
    assert np.allclose(pde.to_field(np.zeros((16 * 64, 4)), state), state)
    # the change is zero at t = 0 whatever the network says
    x0 = torch.tensor([[1.0, 0.5, 0.0]], dtype=torch.float64)
    assert torch.all(pde.apply(x0, torch.ones(1, 4, dtype=torch.float64))[:, :3] == 0)


def test_turbulence_kolmogorov_flow_is_steady_and_marked_infeasible():
    """The laminar Kolmogorov flow omega = -F k_f cos(k_f y) / (nu k_f^2 + alpha) is a
    steady solution: with a zero network its vorticity residual is interpolation error
    only; twice that amplitude is not a solution."""
    from tasks.turbulence.pointwise import turbulence_pointwise, vorticity_fields
    from tasks.turbulence.task import Turbulence

    task = Turbulence(size="smoke", resolution=64, n_train=8, n_test=8, snapshots=8)
    pde = turbulence_pointwise(task)
    assert "Re=1000" in pde.infeasible
    y = ((np.arange(64) + 0.5) * 2 * np.pi / 64)[:, None]
    amp = -task.force * task.kf / (task.viscosity * task.kf**2 + task.drag)
    omega = np.broadcast_to(amp * np.cos(task.kf * y), (64, 64)).copy()
    fields = vorticity_fields(omega)
    np.testing.assert_allclose(fields[2], -amp * task.kf * np.sin(task.kf * y) * np.ones((1, 64)), atol=1e-9)
    np.testing.assert_allclose(fields[4], -amp / task.kf * np.sin(task.kf * y) * np.ones((1, 64)), atol=1e-9)
    x_np = pde.collocation(np.random.default_rng(0), 256, time_slices=2)
    x = torch.tensor(x_np, requires_grad=True)
    zero = pde.apply(x, torch.zeros(len(x_np), 2, dtype=torch.float64))
    scale = task.force * task.kf / 4.0  # the forcing in the residual's units
    for om, bound in ((omega, 0.03), (2 * omega, None)):
        vort, poisson = pde.residual(x, zero, torch.tensor(pde.coefficients(om[None], x_np)))
        if bound is None:
            assert vort.abs().max() > 0.5 * scale
        else:
            assert vort.abs().max() < bound * scale and poisson.abs().max() == 0


# ------------------------------------------------------------------- end to end
def test_smoke_cell_runs_and_records_per_instance_costs(tmp_path, data_dir):
    from bench.cli import main

    methods = "methods.pinn:PINN,methods.pinn:BPINN:instances=1"  # smoke's default (2), an override
    argv = ["run", "--tasks", "darcy", "--methods", methods, "--size", "smoke", "--out", str(tmp_path / "run"),
            "--data-dir", str(data_dir), "--no-report", "--quiet"]
    assert main(argv) == 0
    records = sorted((tmp_path / "run" / "records").glob("*.json"))
    assert len(records) == 2
    for path in records:
        rec = json.loads(path.read_text())
        assert rec["status"] == "ok", rec.get("error") or rec.get("reason")
        n = 1 if "BPINN" in path.name else 2
        assert rec["eval_samples"] == n and rec["pointwise"]["instances"] == n
        rows = {(m["metric"], m.get("k")): m for m in rec["measurements"]}
        assert rows[("rel_l2", 4)]["n"] == n and rows[("rel_l2", 4)]["value"] < 1.0
        assert rows[("infer_s", 4)]["value"] > 0.05  # the whole solve is timed, not a cache hit
        # one solve serves every k: timed once, the same time reported at every k, saying so
        assert rows[("infer_s", 16)]["value"] == rows[("infer_s", 4)]["value"]
        assert "independent of k" in rows[("infer_s", 16)]["reason"]
        assert len(rec["pointwise"]["solves"]) == n + 1  # the instances, then one timed solve
        assert rec["pointwise"]["size"] == "smoke" and rec["pointwise"]["solves"]
        if "BPINN" in path.name:
            assert rows[("nll", 4)]["status"] == "ok" and rows[("coverage_90", 4)]["status"] == "ok"
