"""`fno`: the Fourier Neural Operator of neuraloperator (Li et al. 2021), public API only.

The network maps the fine input to a field on the fine grid; the prediction at factor k
is its block average R_k (see `methods.neural`), so unseen factors need no new head.
"""

from __future__ import annotations

import torch

from methods.neural import NeuralMethod
from tasks.spec import TaskSpec


class FNO(NeuralMethod):
    name = "fno"
    summary = "neuraloperator FNO on the fine grid, restricted by R_k"

    def __init__(
        self,
        n_modes: int = 12,
        width: int = 32,
        n_layers: int = 4,
        padding: float = 0.125,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        self.n_modes = n_modes
        self.width = width
        self.n_layers = n_layers
        self.padding = padding
        self.lr = lr
        self.weight_decay = weight_decay

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        from neuralop.models import FNO as _FNO  # heavy import, only when used

        h, w = spec.fine_shape
        # Modes cannot exceed what the grid resolves (rfft keeps w//2 + 1 columns).
        modes = (min(self.n_modes, h // 2), min(self.n_modes, w // 2 + 1))
        periodic = spec.boundary == "periodic"
        return _FNO(
            n_modes=modes,
            in_channels=spec.in_channels,
            out_channels=spec.out_channels,
            hidden_channels=self.width,
            n_layers=self.n_layers,
            # Non-periodic problems are padded so the FFT's periodicity does not wrap
            # boundary layers around (standard practice for Darcy).
            domain_padding=None if periodic or not self.padding else self.padding,
        )
