"""`FourierOperator`: the abstract base of the FNO family, holding its one shared
hyperparameter block and the neuraloperator FNO network (Li et al., ICLR 2021; public
API only) that most of the family builds on.

The network maps the fine input to a field on the fine grid; the prediction at factor k
is its block average R_k (see `methods.neural`), so unseen factors need no new head.
Members declare their loss (and, where they differ, their network); they never inherit
from one another.
"""

from __future__ import annotations

import torch

from methods.neural import NeuralMethod
from nskernel import TaskSpec


class FourierOperator(NeuralMethod):
    """``n_modes`` Fourier modes per axis, ``width`` channels, ``n_layers`` Fourier
    layers, ``padding``: domain padding (a fraction) on non-periodic axes."""

    n_modes: int = 12
    width: int = 32
    n_layers: int = 4
    padding: float = 0.125
    lr: float = 3e-3
    weight_decay: float = 1e-4

    def fourier_modes(self, spec: TaskSpec) -> tuple[int, int]:
        """Modes cannot exceed what the grid resolves (rfft keeps w//2 + 1 columns)."""
        h, w = spec.fine_shape
        return min(self.n_modes, h // 2), min(self.n_modes, w // 2 + 1)

    def fno_network(self, spec: TaskSpec, out_channels: int | None = None, dropout: float = 0.0) -> torch.nn.Module:
        """neuraloperator's FNO with this block's settings; ``out_channels`` defaults to
        the task's, ``dropout`` > 0 adds neuraloperator's channel-MLP dropout."""
        from neuralop.models import FNO  # heavy import, only when used

        periodic = spec.boundary == "periodic"
        extra = {"channel_mlp_dropout": dropout} if dropout > 0 else {}
        return FNO(
            n_modes=self.fourier_modes(spec),
            in_channels=spec.in_channels,
            out_channels=spec.out_channels if out_channels is None else out_channels,
            hidden_channels=self.width,
            n_layers=self.n_layers,
            # Non-periodic problems are padded so the FFT's periodicity does not wrap
            # boundary layers around (standard practice for Darcy).
            domain_padding=None if periodic or not self.padding else self.padding,
            **extra,
        )

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        return self.fno_network(spec)


__all__ = ["FourierOperator"]
