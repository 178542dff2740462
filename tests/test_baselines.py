"""Operator baselines: gfno equivariance, equino conservation by construction, pino's
physics term, the UQ references, label-free pipno, ppino, and smoke fit/predict."""

import dataclasses

import numpy as np
import pytest
import torch

from methods.fno_family.equino import EquiNO
from methods.fno_family.fno import FNO
from methods.fno_family.gfno import GFNO
from methods.fno_family.gfno_layers import make_group, transform
from methods.fno_family.pino import PINO, residual_rms
from methods.fno_family.pipno import PIPNO
from methods.fno_family.ppino import PPINO, derivative_features
from methods.fno_family.uq import FNOEnsemble, FNOMCDropout
from nskernel import Budget, Context, Dataset, TaskSpec
from nskernel.grid import restrict
from tasks.darcy.task import Darcy

TINY = Budget(epochs=1, max_train_s=30.0, batch_size=8)
NO_TRAINING = Budget(epochs=0, max_train_s=30.0, batch_size=8)


@pytest.fixture(scope="module")
def darcy():
    """Darcy smoke task (declared p4m, as the problem is) and 12 samples."""
    task = Darcy.sized("smoke")
    return dataclasses.replace(task.spec(), symmetry="p4m"), task.generate(12, seed=3)


def _train(ds: Dataset, n: int = 8) -> Dataset:
    return ds.subset(slice(0, n)).for_training((4, 8))


def _div(u: torch.Tensor, k: int) -> torch.Tensor:
    """Periodic central-difference divergence of channels (u, v) = (1, 2) on [0, 1)^2."""
    n = u.shape[-1]
    ux = (torch.roll(u[:, 1], -1, -1) - torch.roll(u[:, 1], 1, -1)) * n / 2
    vy = (torch.roll(u[:, 2], -1, -2) - torch.roll(u[:, 2], 1, -2)) * n / 2
    return ux + vy


def flow_spec(**kw) -> TaskSpec:
    """A synthetic periodic 3-channel (T, u, v) flow with a divergence hook."""
    base = dict(name="flow", fine_shape=(32, 32), in_channels=3, out_channels=3, in_names=("T", "u", "v"),
                out_names=("T", "u", "v"), boundary="periodic", time_dependent=True, divergence=_div)
    return TaskSpec(**{**base, **kw})


def flow_data(n: int = 8, shape: tuple[int, int] = (32, 32)) -> Dataset:
    g = np.random.default_rng(1)
    x = g.standard_normal((n, 3, *shape)).astype(np.float32)
    y = np.cumsum(g.standard_normal((n, 3, *shape)), axis=-1).astype(np.float32)  # smooth-ish
    return Dataset(inputs=x, targets={k: restrict(y, k) for k in (4, 8, 16)}, fine=y)


# -- gfno -------------------------------------------------------------------------------
def _random_net(spec: TaskSpec) -> torch.nn.Module:
    torch.manual_seed(0)
    net = GFNO(width=4, n_modes=8)._net(spec, 4).double()
    for p in net.parameters():
        p.data = p.data.to(torch.complex128) if p.is_complex() else p.data
        if p.dim() == 1:  # non-zero biases, so a wrong bias rule would show
            p.data.normal_()
    return net


GROUP_CASES = [
    ("p4m", (1,), (1,), (16, 16), "dirichlet"),
    ("p4m", (1, -1), (-1,), (16, 16), "periodic"),  # a pseudoscalar (vorticity-like) output
    ("p4", (1,), (1,), (16, 16), "periodic"),
    ("p2", (1,), (1,), (16, 32), "periodic"),
    ("flip_x", (1, -1, 1), (1, -1, 1), (16, 48), "periodic-x/no-slip-z"),  # (T, u, w) convection
]


@pytest.mark.parametrize("sym,pin,pout,shape,boundary", GROUP_CASES)
def test_gfno_is_equivariant_to_round_off(sym, pin, pout, shape, boundary):
    spec = flow_spec(symmetry=sym, in_parity=pin, out_parity=pout, fine_shape=shape, boundary=boundary,
                     in_channels=len(pin), out_channels=len(pout), divergence=None)
    net, group = _random_net(spec), make_group(sym)
    x = torch.randn(1, len(pin), *shape, dtype=torch.float64)
    y = net(x)
    for g in range(1, group.order):
        gy = transform(y, group, g, pout)
        assert (gy - y).abs().max() > 1e-3 * y.abs().max()  # the action is not trivial here
        err = (net(transform(x, group, g, pin)) - gy).abs().max() / y.abs().max()
        assert err < 1e-12, (sym, g, float(err))


def test_gfno_equivariance_test_detects_a_wrong_parity():
    spec = flow_spec(symmetry="p4m", in_parity=(1,), out_parity=(-1,), in_channels=1, out_channels=1,
                     fine_shape=(16, 16), divergence=None)
    net, group = _random_net(spec), make_group("p4m")
    x = torch.randn(1, 1, 16, 16, dtype=torch.float64)
    wrong = transform(net(x), group, 4, (1,))  # the output is odd; treat it as even
    assert (net(transform(x, group, 4, (1,))) - wrong).abs().max() > 1e-2 * net(x).abs().max()


def test_gfno_method_commutes_with_rotation_on_darcy(darcy):
    spec, ds = darcy
    torch.manual_seed(0)
    m = GFNO(width=4, n_modes=8).fit(_train(ds, 4), spec, NO_TRAINING, Context(seed=0, dtype="float64"))
    group = make_group("p4m")
    x = ds.inputs[8:10]
    for k in (4, 16):
        p = m.predict(x, k).mean
        for g in (1, 5):
            rot = m.predict(transform(torch.as_tensor(x), group, g, (1,)).numpy(), k).mean
            want = transform(torch.as_tensor(p), group, g, (1,)).numpy()
            assert np.abs(rot - want).max() < 1e-10 * np.abs(p).max()


def test_gfno_matches_fno_parameter_count_by_width(darcy):
    spec, _ = darcy
    m = GFNO()
    target = sum(p.numel() for p in FNO().build_model(spec).parameters())
    got = sum(p.numel() for p in m._net(spec, m.matched_width(spec)).parameters())
    assert abs(got - target) < 0.05 * target


def test_gfno_not_applicable_without_a_group_or_square_grid(darcy):
    spec, _ = darcy
    assert "no symmetry" in GFNO().not_applicable(dataclasses.replace(spec, symmetry="none"))
    assert "square" in GFNO().not_applicable(flow_spec(symmetry="p4", fine_shape=(16, 32)))
    assert GFNO().not_applicable(spec) is None


# -- equino -----------------------------------------------------------------------------
def test_equino_darcy_predictions_are_flux_balanced_by_construction(darcy):
    """Flux balance: the domain mean of the coarse FV residual (net outflow minus source,
    in units of the source) equals the fitted closure c K at every K, to round-off."""
    spec, ds = darcy
    torch.manual_seed(0)
    m = EquiNO(n_pod=6).fit(_train(ds), spec, NO_TRAINING, Context(seed=0, dtype="float64"))
    assert -0.03 < m._c < -0.005  # the block averages' own closure (about -0.014 per unit K)
    a = torch.as_tensor(ds.inputs[8:12], dtype=torch.float64)
    for k in (4, 8, 16):
        pred = torch.as_tensor(m.predict(ds.inputs[8:12], k).mean)
        g = spec.residual(pred, a, k).mean(dim=(1, 2, 3))
        assert torch.allclose(g, torch.full_like(g, m._c * k), rtol=0, atol=1e-10), g
        # ... while the raw backbone output is not balanced (so the test can fail)
        x = m.encode(torch.as_tensor(ds.inputs[8:12], dtype=torch.float64))
        raw = m.decode(restrict(m.model(x), k)).detach()
        assert (spec.residual(raw, a, k).mean(dim=(1, 2, 3)) - m._c * k).abs().max() > 1e-3


def test_equino_flow_predictions_are_divergence_free_by_construction():
    spec, ds = flow_spec(), flow_data()
    torch.manual_seed(0)
    m = EquiNO(n_pod=5).fit(ds.for_training((4, 8)), spec, NO_TRAINING, Context(seed=0, dtype="float64"))
    assert m.constraint_ == "divergence-free"
    for k in (4, 8, 16):
        pred = torch.as_tensor(m.predict(ds.inputs, k).mean)
        scale = pred[:, 1:].abs().max() * pred.shape[-1]
        assert _div(pred, k).abs().max() < 1e-10 * scale
        if k < 16:  # (on 2x2 cells a periodic central difference vanishes identically)
            assert _div(torch.as_tensor(ds.targets[k], dtype=torch.float64), k).abs().max() > 1e-2 * scale
    # rollout (coarse input) predictions are projected too
    adv = torch.as_tensor(m.advance(ds.targets[8], 8).mean)
    assert _div(adv, 8).abs().max() < 1e-10 * adv[:, 1:].abs().max() * adv.shape[-1]


def test_equino_cannot_predict_below_its_basis_grid():
    assert EquiNO().k_not_supported(2, (4, 8)) is not None
    assert EquiNO().k_not_supported(16, (4, 8)) is None


# -- pino -------------------------------------------------------------------------------
def test_pino_physics_term_vanishes_on_the_exact_fine_solution(darcy):
    spec, ds = darcy
    a = ds.inputs[:4].astype(np.float64)
    u = spec.fine_solve(a)  # float64 fine solution
    m = PINO().fit(_train(ds), spec, NO_TRAINING, Context(seed=0, dtype="float64"))
    x = m.encode(torch.as_tensor(a))
    out = (torch.as_tensor(u) - m._y_mean) / m._y_std  # the network output that decodes to u
    assert float(m.physics_loss(out, x)) < 1e-6
    noisy = out * (1 + 1e-2 * torch.randn_like(out))
    assert float(m.physics_loss(noisy, x)) > 0.1
    smooth = residual_rms(spec, torch.as_tensor(u) * 1.01, torch.as_tensor(a), 1).mean()
    assert float(smooth) == pytest.approx(0.01, rel=1e-3)  # a 1% scale error: 1% residual


# -- UQ references ----------------------------------------------------------------------
@pytest.mark.parametrize("cls,kw", [(FNOEnsemble, {"n_members": 2, "width": 8}),
                                    (FNOMCDropout, {"width": 8, "n_samples": 4})])
def test_uq_references_give_positive_variance_deterministic_with_seed(darcy, cls, kw):
    spec, ds = darcy

    def run(seed: int):
        ctx = Context(seed=seed)
        ctx.apply()  # as the runner does per cell
        return cls(**kw).fit(_train(ds, 4), spec, TINY, ctx).predict(ds.inputs[8:10], 8)

    a, b, c = run(0), run(0), run(1)
    assert a.var.shape == a.mean.shape and (a.var > 0).all()
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.var, b.var)
    assert not np.array_equal(a.mean, c.mean)


# -- pipno ------------------------------------------------------------------------------
def test_pipno_never_reads_targets(darcy):
    spec, ds = darcy
    train = _train(ds)
    blind = Dataset(inputs=train.inputs, targets={k: np.full_like(v, np.nan) for k, v in train.targets.items()})
    preds = []
    for data in (blind, train):
        ctx = Context(seed=0)
        ctx.apply()
        m = PIPNO(width=8).fit(data, spec, Budget(epochs=2, max_train_s=30.0, batch_size=4), ctx)
        assert all(np.isfinite(v).all() for v in m.train_log.loss)
        preds.append(m.predict(ds.inputs[8:12], 4).mean)
    assert np.isfinite(preds[0]).all()
    np.testing.assert_array_equal(preds[0], preds[1])  # the labels changed nothing


def test_pipno_not_applicable_where_the_residual_underdetermines_the_outputs(darcy):
    spec, _ = darcy
    one_eq = flow_spec(residual=lambda u, a, k: u[:, 0] - restrict(a, k)[:, 0])  # 1 + div = 2 < 3
    assert "equation" in PIPNO().not_applicable(one_eq)
    assert "residual" in PIPNO().not_applicable(flow_spec())
    assert PIPNO().not_applicable(spec) is None


# -- ppino ------------------------------------------------------------------------------
def test_derivative_features_are_exact_on_a_quadratic():
    y, x = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    f = derivative_features((x**2 + 3 * x * y)[None, None], periodic=False)[0, :, 2:-2, 2:-2]
    wants = (2 * x + 3 * y, 3 * x, torch.full_like(x, 2.0), torch.zeros_like(x), torch.full_like(x, 3.0))
    for c, want in zip(f[1:], wants):  # u_x, u_y, u_xx, u_yy, u_xy
        torch.testing.assert_close(c, want[2:-2, 2:-2])


# -- all of them ------------------------------------------------------------------------
ALL = [
    (PINO, {"physics_weight": 0.5, "weighting": "relobralo", "physics_k": 2}),
    (GFNO, {"width": 5, "n_modes": 8}),
    (EquiNO, {"n_pod": 7, "balance": "exact"}),
    (PIPNO, {"n_parallel": 2, "width": 8}),
    (PPINO, {"n_rounds": 1, "pseudo_weight": 0.25, "phi_epochs": 1, "width": 8}),
    (FNOEnsemble, {"n_members": 2, "beta": 0.0, "width": 8}),
    (FNOMCDropout, {"dropout": 0.2, "n_samples": 3, "width": 8}),
]


@pytest.mark.parametrize("cls,kw", ALL, ids=[c.__name__ for c, _ in ALL])
def test_hyperparameters_are_stored_unchanged(cls, kw):
    m = cls(**kw)
    assert {n: m.get_params()[n] for n in kw} == kw
    assert set(m.get_params()) == set(cls.param_defaults())


@pytest.mark.parametrize("cls,kw", ALL, ids=[c.__name__ for c, _ in ALL])
def test_fit_predict_on_darcy_smoke(darcy, cls, kw):
    spec, ds = darcy
    ctx = Context(seed=0)
    ctx.apply()
    m = cls(**kw).fit(_train(ds), spec, TINY, ctx)
    many = m.predict_many(ds.inputs[8:12], (4, 8, 16))  # what scoring calls
    for k in (4, 8, 16):
        p = m.predict(ds.inputs[8:12], k)  # what timing calls
        assert p.mean.shape == (4, 1, 32 // k, 32 // k) and np.isfinite(p.mean).all()
        assert (p.var is not None) == cls.probabilistic
        np.testing.assert_allclose(many[k].mean, p.mean, rtol=1e-6, atol=1e-9)
        if p.var is not None:
            np.testing.assert_allclose(many[k].var, p.var, rtol=1e-6, atol=1e-12)
    assert m.n_params() > 0
