"""Uncertainty of NeuroScale: a heteroscedastic variance head (aleatoric), MC dropout
and a deep ensemble (epistemic, `methods.ensemble`), combined as a moment-matched
Gaussian mixture (`methods.ensemble.mixture_moments`).

With S = M x T predictions (M ensemble members, T dropout masks each; T = 1 without
dropout), each a Gaussian ``N(mu_s, sigma_s^2)``, the equally weighted mixture has

    mean = (1/S) sum_s mu_s
    var  = (1/S) sum_s sigma_s^2  +  (1/S) sum_s (mu_s - mean)^2
           [aleatoric]               [epistemic: spread of the members/masks]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class VarianceHead(nn.Module):
    """Log-variance of the block-averaged output at factor ``k``:

        log sigma_k^2(x) = a(h_k(x)) + s(h_k(x)) (log2 k - c),

    with ``h_k = R_k`` of the fine features and ``a``, ``s`` a pointwise MLP. Linear in
    ``log2 k`` (a FiLM-style conditioning on the factor) means a local power law
    ``sigma_k^2 ~ k^s``: averaging over larger blocks shrinks the noise at a rate the
    head learns from the training factors, and an unseen factor extrapolates that law.
    ``c`` centres log2 k on the training factors. The output is softly bounded to
    ``(-bound, bound)`` so that exp() can neither overflow nor collapse to zero.
    """

    def __init__(self, width: int, out_channels: int, log2k_centre: float, bound: float = 12.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(width, width, 1), nn.GELU(), nn.Conv2d(width, 2 * out_channels, 1))
        self.register_buffer("centre", torch.tensor(float(log2k_centre)))
        self.bound = bound

    def forward(self, feats_k: torch.Tensor, k: int) -> torch.Tensor:
        a, s = self.net(feats_k).chunk(2, dim=1)
        t = a + s * (math.log2(k) - self.centre)
        return self.bound * torch.tanh(t / self.bound)


@contextmanager
def mc_dropout(model: nn.Module, seed: int, enabled: bool = True) -> Iterator[None]:
    """Within the block, dropout layers of ``model`` sample masks (everything else stays
    in eval mode); masks come from a private RNG stream seeded by ``seed`` so predictions
    are reproducible and the global RNG state is left untouched."""
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0] if enabled else []
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for m in drops:
            m.train()
        try:
            yield
        finally:
            for m in drops:
                m.eval()
