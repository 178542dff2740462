"""`unet`: shapes on every task's smoke spec, fit/predict at smoke, exact commutation with
periodic shifts by multiples of its coarsest stride, parameter count, bad values."""

import numpy as np
import pytest
import torch

from methods.unet import UNet
from nskernel import Budget, Context, Dataset, TaskSpec
from nskernel.grid import restrict
from tasks.convection.task import Convection
from tasks.darcy.task import Darcy
from tasks.turbulence.task import Turbulence

TINY = Budget(epochs=1, max_train_s=30.0, batch_size=8)
SMOKE_SPECS = {cls.__name__: cls.sized("smoke").spec() for cls in (Darcy, Turbulence, Convection)}


def _net(spec, dtype=torch.float32, **kw):
    torch.manual_seed(0)
    net = UNet(**kw).build_model(spec).to(dtype)
    for name, p in net.named_parameters():  # a trained-like scale: blocks and biases not ~0
        if name.endswith("gamma") or p.dim() == 1:
            p.data.normal_(0, 0.5)
    return net


@pytest.mark.parametrize("task", list(SMOKE_SPECS))
def test_output_shape_on_every_smoke_spec(task):
    spec = SMOKE_SPECS[task]
    assert UNet().not_applicable(spec) is None
    x = torch.randn(2, spec.in_channels, *spec.fine_shape)
    with torch.no_grad():
        y = _net(spec)(x)
    assert y.shape == (2, spec.out_channels, *spec.fine_shape) and torch.isfinite(y).all()


def test_fit_predict_on_darcy_smoke():
    task = Darcy.sized("smoke")
    spec, ds = task.spec(), task.generate(12, seed=3)
    ctx = Context(seed=0)
    ctx.apply()
    m = UNet(width=8, levels=2).fit(ds.subset(slice(0, 8)).for_training((4, 8)), spec, TINY, ctx)
    x = ds.inputs[8:12]
    many = m.predict_many(x, (4, 8, 16))
    for k in (4, 8, 16):
        p = m.predict(x, k)
        assert p.mean.shape == (4, 1, 32 // k, 32 // k) and np.isfinite(p.mean).all() and p.var is None
        np.testing.assert_allclose(many[k].mean, p.mean, rtol=1e-6, atol=1e-9)
    assert m.n_params() == sum(q.numel() for q in UNet(width=8, levels=2).build_model(spec).parameters())


@pytest.mark.parametrize("task,axes", [("Turbulence", (-2, -1)), ("Convection", (-1,))])
def test_commutes_with_periodic_shifts_by_the_coarsest_stride(task, axes):
    """Exact (round-off) on periodic axes for shifts by multiples of 2**levels: circular
    padding, pointwise norms/MLPs and stride-2 (transposed) convolutions commute with them."""
    spec = SMOKE_SPECS[task]
    net = _net(spec, torch.float64, width=4, levels=3)
    x = torch.randn(1, spec.in_channels, *spec.fine_shape, dtype=torch.float64)
    with torch.no_grad():
        y = net(x)
        for axis in axes:
            for s in (8, 24):
                err = (net(torch.roll(x, s, axis)) - torch.roll(y, s, axis)).abs().max()
                assert err < 1e-12 * y.abs().max(), (axis, s, float(err))
            # a shift that is not a multiple of the stride does not commute: the test can fail
            assert (net(torch.roll(x, 3, axis)) - torch.roll(y, 3, axis)).abs().max() > 1e-3 * y.abs().max()
    if task == "Convection":  # the plates (rows) are zero-padded: no commutation there
        with torch.no_grad():
            assert (net(torch.roll(x, 8, -2)) - torch.roll(y, 8, -2)).abs().max() > 1e-3 * y.abs().max()


def test_rollout_step_runs_on_the_prolonged_coarse_state():
    """advance at k=16 on a 32x32 periodic flow: the 2x2 coarse state is not divisible by
    2**levels, so the network must run on the fine grid (P_k, network, R_k)."""
    spec = TaskSpec(name="flow", fine_shape=(32, 32), in_channels=2, out_channels=2, in_names=("u", "v"),
                    out_names=("u", "v"), boundary="periodic", time_dependent=True)
    g = np.random.default_rng(0)
    x, y = (g.standard_normal((6, 2, 32, 32)).astype(np.float32) for _ in range(2))
    ds = Dataset(inputs=x, targets={k: restrict(y, k) for k in (4, 8)})
    m = UNet(width=4, levels=3).fit(ds, spec, Budget(epochs=0, max_train_s=30.0, batch_size=4), Context(seed=0))
    state = restrict(x[:2], 16)
    step = m.advance(state, 16)
    assert step.mean.shape == (2, 2, 2, 2) and np.isfinite(step.mean).all()
    np.testing.assert_allclose(step.mean, m.predict(np.repeat(np.repeat(state, 16, -2), 16, -1), 16).mean)


def test_default_parameter_count_matches_the_docstring_and_fno():
    spec = Darcy.sized("small").spec()
    n = sum(p.numel() for p in UNet().build_model(spec).parameters() if p.requires_grad)
    assert n == 335_601
    assert abs(n - 357_217) < 0.2 * 357_217  # fno's count on Darcy small


def test_not_applicable_when_the_grid_is_not_divisible():
    spec = SMOKE_SPECS["Darcy"]  # 32x32
    assert UNet(levels=5).not_applicable(spec) is None
    reason = UNet(levels=6).not_applicable(spec)
    assert "2**levels = 64" in reason
    assert UNet(levels=6).not_applicable(spec) == reason  # pure
    assert "80x80" in UNet(levels=5).not_applicable(SMOKE_SPECS["Turbulence"])  # 80 = 16 * 5


@pytest.mark.parametrize("kw", [{"width": 0}, {"levels": 0}, {"blocks": 0}, {"width": 2.5}, {"levels": True},
                                {"lr": 0.0}, {"weight_decay": -1.0}])
def test_check_params_refuses_bad_values(kw):
    with pytest.raises(ValueError):
        UNet(**kw)


def test_hyperparameters_are_stored_unchanged():
    kw = {"width": 8, "levels": 2, "blocks": 3, "lr": 2e-3}
    m = UNet(**kw)
    assert {n: m.get_params()[n] for n in kw} == kw
    assert set(m.get_params()) == {"width", "levels", "blocks", "lr", "weight_decay", "schedule", "augment", "amp"}
