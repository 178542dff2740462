"""Counting the cost of one training step in floating-point operations, for budgets in
FLOPs (`nskernel.Budget` with ``mode="flops"``): the count depends on shapes only, so a
FLOP budget buys the same steps on every machine.

torch's `FlopCounterMode` counts matrix products and convolutions (complex products as
real ones, torch's convention); FFTs, which it does not count, are added at the usual
5 N log2 N per complex transform of N points (half for real transforms). Written here
because no library counts FFTs in torch programs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def _fft_flops(n_points: int, complex_points: int, batch: int) -> int:
    """5 N log2 N per complex transform of N points (the usual count), half for real."""
    return int(5 * complex_points * math.log2(max(n_points, 2)) * batch)


def _fft_formulas() -> dict[Any, Callable[..., int]]:
    """FLOP formulas for torch's FFT kernels, which `FlopCounterMode` does not count."""

    def r2c(x_shape: Sequence[int], dim: Sequence[int], *args: Any, **kwargs: Any) -> int:
        n = int(np.prod([x_shape[d] for d in dim]))
        return _fft_flops(n, n // 2, int(np.prod(x_shape)) // n)

    def c2c(x_shape: Sequence[int], dim: Sequence[int], *args: Any, **kwargs: Any) -> int:
        n = int(np.prod([x_shape[d] for d in dim]))
        return _fft_flops(n, n, int(np.prod(x_shape)) // n)

    def c2r(x_shape: Sequence[int], dim: Sequence[int], normalization: int, last_dim_size: int,
            *args: Any, **kwargs: Any) -> int:
        n = int(np.prod([x_shape[d] for d in dim[:-1]])) * last_dim_size
        return _fft_flops(n, n // 2, int(np.prod(x_shape)) * last_dim_size // (x_shape[dim[-1]] * n))

    ops = torch.ops.aten
    return {ops._fft_r2c: r2c, ops._fft_c2c: c2c, ops._fft_c2r: c2r}


def count_step_flops(loss_fn: LossFn, params: Sequence[torch.nn.Parameter], idx: torch.Tensor) -> float:
    """FLOPs of one training step (forward and backward of ``loss_fn`` on the batch
    ``idx``), counted by torch's `FlopCounterMode` (matrix products and convolutions;
    complex products counted as real ones, torch's convention) plus FFTs at 5 N log2 N.
    The count depends on shapes only, not on the machine. Runs inside a forked random
    stream and leaves no gradient behind."""
    from torch.utils.flop_counter import FlopCounterMode

    devices = sorted({p.device for p in params if p.device.type == "cuda"}, key=str)
    with torch.random.fork_rng(devices=devices), FlopCounterMode(display=False,
                                                                 custom_mapping=_fft_formulas()) as counter:
        loss, _ = loss_fn(idx)
        loss.backward()
    for p in params:
        p.grad = None
    return float(counter.get_total_flops())


__all__ = ["count_step_flops"]
