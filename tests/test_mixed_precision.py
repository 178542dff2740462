"""Mixed precision (`methods.precision`, ``amp`` of the training loop and of every neural
method): bf16 autocast of the network in training mode only, outputs and losses in
float32, spectral layers in float32, finite losses close to the float32 run's."""

import numpy as np
import pytest
import torch

from methods.fno_family.fno import FNO
from methods.fno_family.gfno import GFNO
from methods.precision import keeps_fp32, mixed_precision
from methods.training import train
from nskernel import Budget, Context, Dataset, TaskSpec
from nskernel.grid import restrict

SPEC = TaskSpec(name="toy", fine_shape=(16, 16), in_channels=1, out_channels=1, in_names=("a",), out_names=("u",),
                boundary="dirichlet", symmetry="p4m")
TINY = Budget(epochs=2, max_train_s=60.0, batch_size=4)


def toy_data(n: int = 8) -> Dataset:
    g = np.random.default_rng(0)
    x = g.standard_normal((n, 1, 16, 16)).astype(np.float32)
    y = np.cumsum(x, axis=-1)
    return Dataset(inputs=x, targets={k: restrict(y, k) for k in (4, 8)})


def test_the_network_runs_in_bf16_while_training_and_returns_float32():
    inner = torch.nn.Linear(4, 4)
    model = torch.nn.Sequential(inner, torch.nn.GELU())
    dtypes = []
    inner.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    x = torch.randn(2, 4)
    with mixed_precision(model, "cpu", torch.float32):
        assert model.train()(x).dtype == torch.float32 and dtypes[-1] == torch.bfloat16
        assert model.eval()(x).dtype == torch.float32 and dtypes[-1] == torch.float32  # validation, prediction
    assert "forward" not in model.__dict__  # put back
    assert model.train()(x).dtype == torch.float32 and dtypes[-1] == torch.float32
    with pytest.raises(ValueError, match="float32"):
        with mixed_precision(model.double(), "cpu", torch.float64):
            pass


@pytest.mark.parametrize("cls", [FNO, GFNO])
def test_spectral_layers_stay_in_float32(cls, monkeypatch):
    """Every FFT of neuraloperator's SpectralConv and gfno's GroupSpectralConv runs on
    float32 inputs outside autocast, while the rest of the network runs in bf16."""
    method = cls(width=8, n_modes=4)
    method._x_mean = method._y_mean = torch.zeros(1, 1, 1, 1)  # gfno adjusts them (set by fit)
    model = method.build_model(SPEC)
    assert any(keeps_fp32(m) for m in model.modules())
    seen = []
    for name in ("rfftn", "rfft2"):
        fft = getattr(torch.fft, name)

        def spy(x, *a, _fft=fft, **kw):
            seen.append((x.dtype, torch.is_autocast_enabled("cpu")))
            return _fft(x, *a, **kw)

        monkeypatch.setattr(torch.fft, name, spy)
    low = []
    for m in model.modules():
        if m is not model and not keeps_fp32(m):
            m.register_forward_hook(lambda m, i, o: low.append(getattr(o, "dtype", None)))
    with mixed_precision(model, "cpu", torch.float32):
        out = model.train()(torch.randn(2, 1, 16, 16))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert seen and all(s == (torch.float32, False) for s in seen)
    if cls is FNO:  # its channel MLPs return bf16 (gfno's layers add float32 biases after bf16 products)
        assert torch.bfloat16 in low


def test_a_tiny_training_with_amp_gives_finite_losses_close_to_float32():
    x = torch.randn(8, 1, 16, 16)
    y = torch.cumsum(x, dim=-1)

    def run(amp: bool) -> tuple[list[float], torch.nn.Module]:
        torch.manual_seed(0)
        model = FNO(width=8, n_modes=4).build_model(SPEC)
        losses = []

        def loss_fn(idx):
            out = model(x[idx])
            assert out.dtype == torch.float32  # the loss is computed in float32
            loss = (out - y[idx]).norm() / y[idx].norm()
            losses.append(loss.item())
            return loss, {}

        train(model, loss_fn, 8, budget=TINY, ctx=Context(seed=1), amp=amp)
        return losses, model

    ref, m32 = run(False)
    low, m16 = run(True)
    assert len(low) == len(ref) == 4 and np.isfinite(low).all()
    assert abs(low[0] - ref[0]) < 2e-2 * ref[0]  # same weights, bf16 forward: ~3 significant digits
    assert any(not torch.equal(a, b) for a, b in zip(m32.state_dict().values(), m16.state_dict().values()))


@pytest.mark.parametrize("cls", [FNO, GFNO])
def test_neural_methods_train_with_amp(cls):
    data = toy_data()
    torch.manual_seed(0)
    m = cls(amp=True, width=8, n_modes=4).fit(data, SPEC, TINY, Context(seed=1))
    assert np.isfinite(m.train_log.loss).all()
    pred = m.predict(data.inputs[:2], 8).mean
    assert pred.dtype == np.float64 and np.isfinite(pred).all()
    assert all(p.dtype in (torch.float32, torch.complex64) for p in m.model.parameters())  # weights stay float32
