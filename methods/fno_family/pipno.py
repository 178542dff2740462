"""`pipno`: physics-informed parallel neural operator (Yuan, Wang, Song, Heitor & Chen,
"High-fidelity Multiphysics Modelling for Rapid Predictions Using Physics-informed
Parallel Neural Operator", arXiv:2502.19543, 2025). Label-free: trained on the PDE
residual only and never reads a target (`output_stats` is overridden accordingly).

Our reconstruction (the public description is thin): an FNO-type network whose Fourier
layers each run ``n_parallel`` spectral kernels in parallel, with ``n_modes``,
``n_modes/2``, ``n_modes/4``, ... modes, every branch with its own pointwise skip and
GELU, and average the branch outputs (the paper's "parallel kernel integration ...
incorporating ensemble learning"; averaging *before* the activation would collapse to
one spectral convolution). Loss: the per-sample RMS of ``spec.residual(u, a, 1)`` on the
fine grid, plus the RMS divergence where the spec has one. Boundary conditions enter
through the residual (its wall ghost cells), so no separate boundary term is needed.

Label-free output scaling: for time-dependent tasks the inputs' per-channel statistics
(the state at t has the distribution of the state at t + horizon); for steady tasks with
a residual affine in u, the least-squares amplitude of the smooth trial field
``sin(pi y) sin(pi x)``; otherwise (0, 1). Not applicable where the spec's label-free
equations (residual + divergence) give fewer equations per cell than output channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from methods.fno_family.base import FourierOperator
from methods.fno_family.pino import residual_rms
from methods.layers import periodic_axes
from nskernel import Dataset, TaskSpec


class ParallelFourierLayer(torch.nn.Module):
    """``mean_p GELU(K_p x + W_p x)`` over parallel branches with decreasing modes."""

    def __init__(self, width: int, modes: list[tuple[int, int]], activate: bool) -> None:
        super().__init__()
        from neuralop.layers.spectral_convolution import SpectralConv

        self.spectral = torch.nn.ModuleList(SpectralConv(width, width, m) for m in modes)
        self.skip = torch.nn.ModuleList(torch.nn.Conv2d(width, width, 1) for _ in modes)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [k(x) + w(x) for k, w in zip(self.spectral, self.skip)]
        if self.activate:
            outs = [F.gelu(o) for o in outs]
        return torch.stack(outs).mean(dim=0)


class ParallelFNO(torch.nn.Module):
    """Lifting (with grid coordinates) -> parallel Fourier layers -> projection."""

    def __init__(self, c_in: int, c_out: int, width: int, modes: list[tuple[int, int]], n_layers: int,
                 pad: tuple[float, float]) -> None:
        super().__init__()
        self.lift = torch.nn.Sequential(torch.nn.Conv2d(c_in + 2, 2 * width, 1), torch.nn.GELU(),
                                        torch.nn.Conv2d(2 * width, width, 1))
        self.layers = torch.nn.ModuleList(ParallelFourierLayer(width, modes, i < n_layers - 1) for i in range(n_layers))
        self.proj = torch.nn.Sequential(torch.nn.Conv2d(width, 2 * width, 1), torch.nn.GELU(),
                                        torch.nn.Conv2d(2 * width, c_out, 1))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=x.dtype, device=x.device),
                                torch.linspace(0, 1, w, dtype=x.dtype, device=x.device), indexing="ij")
        f = self.lift(torch.cat([x, yy.expand(b, 1, h, w), xx.expand(b, 1, h, w)], dim=1))
        py, px = math.ceil(self.pad[0] * h), math.ceil(self.pad[1] * w)
        f = F.pad(f, (0, px, 0, py))  # non-periodic axes: keep the FFT from wrapping
        for layer in self.layers:
            f = layer(f)
        return self.proj(f[..., :h, :w])


def label_free_equations(spec: TaskSpec) -> int:
    """Equations per cell that the spec provides without labels (residual + divergence)."""
    h, w = spec.fine_shape
    u = torch.zeros(1, spec.out_channels, h, w, dtype=torch.float64)
    a = torch.ones(1, spec.in_channels, h, w, dtype=torch.float64)
    n = spec.residual(u, a, 1).numel() // (h * w) if spec.residual is not None else 0
    if spec.divergence is not None:
        n += spec.divergence(u, 1).numel() // (h * w)
    return n


class PIPNO(FourierOperator):
    name = "pipno"
    summary = "parallel-kernel FNO trained on the PDE residual only (no labels)"

    n_parallel: int = 3

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if (reason := super().not_applicable(spec)) is not None:  # the augment mode (NeuralMethod)
            return reason
        if spec.residual is None:
            return f"task {spec.name} publishes no PDE residual: nothing to train on without labels"
        n = label_free_equations(spec)
        if n < spec.out_channels:
            return (f"the residual and divergence of task {spec.name} give {n} equation(s) per cell for "
                    f"{spec.out_channels} output channels: the outputs are not determined without labels")
        return None

    def output_stats(self, train_data: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Output scaling from the inputs and the residual only (never the targets)."""
        spec, x = self._spec, train_data.inputs
        if spec.time_dependent and spec.in_channels == spec.out_channels:
            return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))
        h, w = spec.fine_shape
        yc, xc = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
        bump = torch.as_tensor(np.outer(np.sin(np.pi * yc), np.sin(np.pi * xc)))
        phi = bump.expand(min(len(x), 16), spec.out_channels, h, w)
        a = torch.as_tensor(x[: len(phi)], dtype=torch.float64)
        r0 = spec.residual(torch.zeros_like(phi), a, 1)
        r1 = spec.residual(phi, a, 1) - r0
        r2 = spec.residual(2 * phi, a, 1) - r0
        if not torch.allclose(r2, 2 * r1, rtol=1e-6, atol=1e-12):
            return np.zeros(spec.out_channels), np.ones(spec.out_channels)
        amp = float(-(r0 * r1).sum() / (r1 * r1).sum())  # argmin_t ||r(t phi)||
        mean = np.full(spec.out_channels, amp * float(bump.mean()))
        return mean, np.full(spec.out_channels, abs(amp) * float(bump.std()))

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        h, w = spec.fine_shape
        modes = []
        for p in range(self.n_parallel):
            m = max(2, self.n_modes // 2**p)
            modes.append((min(m, h // 2), min(m, w // 2 + 1)))
        py, px = periodic_axes(spec.boundary)
        pad = (0.0 if py else self.padding, 0.0 if px else self.padding)
        return ParallelFNO(spec.in_channels, spec.out_channels, self.width, modes, self.n_layers, pad)

    def selection_error(self, x_val: torch.Tensor, ys_val: dict[int, torch.Tensor]) -> float:
        """Label-free selection: the training loss (residual, divergence) on the
        validation inputs; the validation targets are never read."""
        total = 0.0
        for start in range(0, len(x_val), self._batch):
            x = x_val[start : start + self._batch]
            total += float(sum(self.loss_terms(x, {}, torch.arange(len(x))).values())) * len(x)
        return total / len(x_val)

    def loss_terms(
        self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        u = self.decode(self.model(x))  # ys (the labels) are deliberately ignored
        raw = x * self._x_std + self._x_mean
        terms = {"residual": residual_rms(self._spec, u, raw, 1).mean()}
        if self._spec.divergence is not None:
            div = self._spec.divergence(u, 1)
            terms["divergence"] = div.reshape(len(u), -1).pow(2).mean(1).sqrt().mean()
        return terms


__all__ = ["PIPNO", "ParallelFNO", "label_free_equations"]
