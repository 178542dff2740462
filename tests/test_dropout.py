"""`FastDropout`: the law of torch's dropout (rate, unbiasedness), seeded, toggled."""

import pytest
import torch
from torch import nn

from methods.dropout import FastDropout, use_fast_dropout


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_rate_and_mean_match_dropout(p):
    x = torch.ones(400_000)
    torch.manual_seed(0)
    y = FastDropout(p).train()(x)
    dropped = (y == 0).double().mean().item()
    assert dropped == pytest.approx(p, abs=4e-3)  # ~5 binomial std at p = 0.5
    assert y.mean().item() == pytest.approx(1.0, abs=1e-2)  # unbiased
    kept = y[y != 0]
    assert torch.allclose(kept, kept[0].expand_as(kept)) and kept[0] == pytest.approx(1 / (1 - p), rel=1e-4)


def test_seeded_eval_identity_and_lanes_independent():
    layer = FastDropout(0.3).train()
    x = torch.randn(8, 16, 33)  # numel not a multiple of 4
    torch.manual_seed(1)
    a = layer(x)
    torch.manual_seed(1)
    assert torch.equal(a, layer(x))
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))  # torch's own at p = 1
    # each of the four 16-bit lanes of a random word drops at the rate p
    torch.manual_seed(2)
    lanes = (FastDropout(0.3).train()(torch.ones(4 * 100_000)) == 0).double().view(-1, 4).mean(0)
    assert torch.allclose(lanes, torch.full((4,), 0.3, dtype=torch.float64), atol=6e-3)


def test_use_fast_dropout_replaces_nested_layers():
    model = nn.Sequential(nn.Linear(3, 3), nn.ModuleList([nn.Dropout(0.2), nn.Dropout(0.4)]), nn.Dropout(0.1))
    use_fast_dropout(model)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert [type(m) for m in drops] == [FastDropout] * 3 and [m.p for m in drops] == [0.2, 0.4, 0.1]
