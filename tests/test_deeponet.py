"""`deeponet`: shapes on every task's smoke grid, a tiny fit/predict, the exact periodicity
of the trunk basis, rollouts, checkpoints, the parameter count and check_params.

The network does not commute with periodic shifts of its input (the trunk is tied to
absolute position), so there is no shift test; see the module docstring."""

import math

import numpy as np
import pytest
import torch

from bench.names import build_method
from methods.deeponet import DeepONet, cell_centre_grid, position_features
from methods.fno_family.fno import FNO
from nskernel import Budget, Context, Dataset, TaskSpec
from nskernel.grid import prolong, restrict
from tasks.convection.task import Convection
from tasks.darcy.task import Darcy
from tasks.turbulence.task import Turbulence

TINY = Budget(epochs=1, max_train_s=30.0, batch_size=8)
NO_TRAINING = Budget(epochs=0, max_train_s=30.0, batch_size=8)
SMALL = dict(width=8, p=16, trunk_width=16, trunk_depth=2)
DEFAULT_N_PARAMS_DARCY_SMALL = 356_037  # stated in DeepONet's docstring
FNO_N_PARAMS_DARCY_SMALL = 357_217


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def darcy():
    task = Darcy.sized("smoke")
    return task.spec(), task.generate(12, seed=3)


@pytest.mark.parametrize("task", [Darcy, Turbulence, Convection])
def test_output_is_the_fine_field_on_every_smoke_grid(task):
    spec = task.sized("smoke").spec()
    torch.manual_seed(0)
    net = DeepONet(**SMALL).build_model(spec)
    x = torch.randn(2, spec.in_channels, *spec.fine_shape)
    y = net(x)
    assert y.shape == (2, spec.out_channels, *spec.fine_shape) and torch.isfinite(y).all()
    assert not torch.allclose(y[0], y[1])  # the branch reads the input


def test_fit_predict_on_darcy_smoke(darcy):
    spec, ds = darcy
    ctx = Context(seed=0)
    ctx.apply()
    m = DeepONet(**SMALL).fit(ds.subset(slice(0, 8)).for_training((4, 8)), spec, TINY, ctx)
    many = m.predict_many(ds.inputs[8:12], (4, 8, 16))
    for k in (4, 8, 16):
        p = m.predict(ds.inputs[8:12], k)
        assert p.mean.shape == (4, 1, 32 // k, 32 // k) and np.isfinite(p.mean).all() and p.var is None
        np.testing.assert_allclose(many[k].mean, p.mean, rtol=1e-6, atol=1e-9)
    assert m.n_params() == _count(m.model) > 0


@pytest.mark.parametrize("task", [Turbulence, Convection])
def test_trunk_basis_is_exactly_periodic_on_periodic_axes(task):
    spec = task.sized("smoke").spec()
    torch.manual_seed(0)
    net = DeepONet(**SMALL).build_model(spec).double().requires_grad_(False)
    periodic = net.periodic
    assert any(periodic)
    grid = cell_centre_grid(spec.fine_shape)  # (H, W, 2) in [-1, 1]
    coords = torch.cat([grid.reshape(-1, 2), torch.rand(256, 2, dtype=torch.float64) * 2 - 1])
    t0 = net.basis(position_features(coords, periodic))
    for axis, per in enumerate(periodic):
        shift = torch.zeros(2, dtype=torch.float64)
        shift[axis] = 2.0  # one period: the whole domain
        t1 = net.basis(position_features(coords + shift, periodic))
        err = float((t1 - t0).abs().max() / t0.abs().max())
        if per:
            assert err < 1e-12, (axis, err)
        else:  # a bounded axis is not periodic: the check can fail
            assert err > 1e-3, (axis, err)
    # on the grid: the basis one cell past the last column is the first column's
    if periodic[1]:
        w = spec.fine_shape[1]
        step = torch.tensor([0.0, 2.0 / w], dtype=torch.float64)
        moved = net.basis(position_features(grid + step, periodic))
        torch.testing.assert_close(moved, torch.roll(net.basis(position_features(grid, periodic)), -1, dims=1))


def test_trunk_features_on_a_periodic_axis_are_cos_and_sin():
    c = torch.tensor([[0.25, -0.5]], dtype=torch.float64)
    f = position_features(c, (False, True))
    torch.testing.assert_close(f, torch.tensor([[0.25, math.cos(-math.pi / 2), math.sin(-math.pi / 2)]],
                                               dtype=torch.float64))


def test_rollout_step_is_the_prediction_of_the_prolonged_state():
    g = np.random.default_rng(1)
    y = g.standard_normal((6, 2, 32, 32)).astype(np.float32)
    data = Dataset(inputs=g.standard_normal((6, 2, 32, 32)).astype(np.float32),
                   targets={k: restrict(y, k) for k in (4, 8)})
    spec = TaskSpec(name="flow", fine_shape=(32, 32), in_channels=2, out_channels=2, in_names=("u", "v"),
                    out_names=("u", "v"), boundary="periodic", time_dependent=True)
    m = DeepONet(**SMALL).fit(data, spec, NO_TRAINING, Context(seed=0))
    state = data.targets[8]
    step = m.advance(state, 8)
    assert step.mean.shape == state.shape
    np.testing.assert_array_equal(step.mean, m.predict(prolong(state, 8), 8).mean)


def test_checkpoint_round_trip(darcy, tmp_path):
    spec, ds = darcy
    m = DeepONet(**SMALL).fit(ds.subset(slice(0, 8)).for_training((4, 8)), spec, TINY, Context(seed=0))
    assert m.save(tmp_path)
    back = DeepONet(**SMALL).restore(tmp_path, spec, Context(seed=0))
    np.testing.assert_array_equal(back.predict(ds.inputs[8:12], 16).mean, m.predict(ds.inputs[8:12], 16).mean)


def test_default_parameter_count_matches_the_docstring_and_fno():
    spec = Darcy.sized("small").spec()
    n = _count(DeepONet().build_model(spec))
    assert n == DEFAULT_N_PARAMS_DARCY_SMALL
    assert f"{n:,}" in DeepONet.__doc__
    assert _count(FNO().build_model(spec)) == FNO_N_PARAMS_DARCY_SMALL
    assert abs(n - FNO_N_PARAMS_DARCY_SMALL) < 0.2 * FNO_N_PARAMS_DARCY_SMALL


@pytest.mark.parametrize("bad", [dict(width=0), dict(p=-1), dict(trunk_width=2.5), dict(trunk_depth=0),
                                 dict(p=True), dict(lr=0.0), dict(schedule="nope")])
def test_check_params_refuses_bad_values(bad):
    with pytest.raises(ValueError):
        DeepONet(**bad).check_params()


def test_plugs_in_by_module_and_class():
    _, m = build_method("methods.deeponet:DeepONet:width=8,p=4")
    assert isinstance(m, DeepONet) and (m.width, m.p) == (8, 4)
    assert set(m.get_params()) == set(DeepONet.param_defaults())
