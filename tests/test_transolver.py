"""`transolver`: output shapes on every task, fit/predict at smoke, periodic-shift
equivariance of the trunk, linear memory in the number of points, parameter count and
parameter checks."""

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from methods.fno_family.fno import FNO
from methods.transolver import Transolver, TransolverNet, coordinate_features
from nskernel import Budget, Context
from tasks.convection.task import Convection
from tasks.darcy.task import Darcy
from tasks.turbulence.task import Turbulence

TINY = Budget(epochs=1, max_train_s=30.0, batch_size=8)
TASKS = [Darcy, Turbulence, Convection]


@pytest.mark.parametrize("task", TASKS, ids=[t.__name__ for t in TASKS])
def test_network_maps_the_fine_input_to_the_fine_grid(task):
    spec = task.sized("smoke").spec()
    torch.manual_seed(0)
    net = Transolver().build_model(spec)
    x = torch.randn(2, spec.in_channels, *spec.fine_shape)
    y = net(x)
    assert y.shape == (2, spec.out_channels, *spec.fine_shape) and torch.isfinite(y).all()
    coarse = torch.randn(1, spec.in_channels, spec.fine_shape[0] // 4, spec.fine_shape[1] // 4)
    assert net(coarse).shape[-2:] == coarse.shape[-2:]  # any grid (rollouts on the coarse grid)


def test_fit_predict_on_darcy_smoke():
    task = Darcy.sized("smoke")
    spec, ds = task.spec(), task.generate(12, seed=3)
    ctx = Context(seed=0)
    ctx.apply()
    m = Transolver().fit(ds.subset(slice(0, 8)).for_training((4, 8)), spec, TINY, ctx)
    many = m.predict_many(ds.inputs[8:12], (4, 8, 16))
    for k in (4, 8, 16):  # 16 unseen
        p = m.predict(ds.inputs[8:12], k)
        assert p.mean.shape == (4, 1, 32 // k, 32 // k) and np.isfinite(p.mean).all()
        assert p.var is None
        np.testing.assert_allclose(many[k].mean, p.mean, rtol=1e-6, atol=1e-9)
    assert all(np.isfinite(v).all() for v in m.train_log.loss)
    assert m.n_params() == sum(p.numel() for p in Transolver().build_model(spec).parameters())


@pytest.mark.parametrize("shape,periodic", [((16, 16), (True, True)), ((8, 24), (False, True))])
def test_trunk_commutes_with_periodic_shifts(shape, periodic):
    """Exact (to round-off) for any shift along a periodic axis when the coordinate
    channels move with the field; the full network sees absolute positions and is not
    equivariant (by design: the coordinate features)."""
    torch.manual_seed(0)
    net = TransolverNet(2, 2, periodic, width=16, layers=2, heads=2, slices=6, mlp_ratio=2.0, kernel=3).double()
    x = torch.randn(2, 2, *shape, dtype=torch.float64)
    z = torch.cat([x, coordinate_features(shape, periodic, x).expand(2, -1, -1, -1)], dim=1)
    y = net.trunk(z)
    for dims, s in (((-1,), 1), ((-1,), 5), ((-2, -1), (3, 2))):
        if -2 in dims and not periodic[0]:
            continue
        rolled = net.trunk(torch.roll(z, s, dims))
        assert (rolled - torch.roll(y, s, dims)).abs().max() < 1e-10 * y.abs().max()
    # the check can fail: a shift along a bounded axis (zero padding) does not commute ...
    if not periodic[0]:
        assert (net.trunk(torch.roll(z, 1, -2)) - torch.roll(y, 1, -2)).abs().max() > 1e-3 * y.abs().max()
    # ... nor does the full network, whose coordinate channels stay put
    assert (net(torch.roll(x, 1, -1)) - torch.roll(net(x), 1, -1)).abs().max() > 1e-3 * y.abs().max()


class LargestTensor(TorchFunctionMode):
    """Records the largest number of elements of any tensor a torch function returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _largest(fn, *args) -> int:
    with torch.no_grad(), LargestTensor() as mode:
        fn(*args)
    return mode.largest


def test_no_intermediate_tensor_grows_faster_than_the_number_of_points():
    """Every tensor of a forward pass has at most C * B * N elements, C a constant of the
    hyperparameters; an N x N attention matrix (N^2 > C * B * N here) would fail."""
    width, heads, slices, ratio, b = 8, 2, 4, 2.0, 2
    net = TransolverNet(1, 1, (True, False), width, 2, heads, slices, ratio, kernel=3)
    per_point = max(int(width * ratio), heads * slices, width)
    sizes = {}
    for side in (16, 32):
        n = side * side
        sizes[n] = _largest(net, torch.randn(b, 1, side, side))
        pad = (side + 2) ** 2 / n  # the convolutions' padded input
        assert sizes[n] <= pad * per_point * b * n < n * n, (side, sizes[n])
    assert sizes[1024] <= 4.5 * sizes[256]  # linear growth (quadratic: 16x)

    def full_attention(x: torch.Tensor) -> torch.Tensor:  # the check detects O(N^2)
        t = x.flatten(2).transpose(1, 2)
        return torch.softmax(t @ t.transpose(1, 2), dim=-1) @ t

    assert _largest(full_attention, torch.randn(b, 1, 32, 32)) == b * 1024 * 1024


def test_default_parameter_count_on_darcy_small():
    spec = Darcy.sized("small").spec()
    got = sum(p.numel() for p in Transolver().build_model(spec).parameters())
    fno = sum(p.numel() for p in FNO().build_model(spec).parameters())
    assert got == 393_617  # stated in the module docstring
    assert fno == 357_217 and abs(got - fno) <= 0.2 * fno


@pytest.mark.parametrize("bad", [{"width": 30, "heads": 4}, {"layers": 0}, {"heads": 0}, {"slices": 0},
                                 {"mlp_ratio": 0.0}, {"kernel": 2}, {"kernel": 0}, {"width": 64.0}, {"lr": 0.0}])
def test_check_params_refuses_bad_values(bad):
    with pytest.raises(ValueError):
        Transolver(**bad)


def test_hyperparameters_are_stored_unchanged():
    kw = {"width": 32, "layers": 2, "heads": 2, "slices": 8, "mlp_ratio": 1.5, "kernel": 1}
    m = Transolver(**kw)
    assert {n: m.get_params()[n] for n in kw} == kw
