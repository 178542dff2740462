"""Autograd helpers for the torch versions of the solvers (`CoarseSolver.differentiable`)."""

from __future__ import annotations

from typing import Any

import torch


class _SafeSqrt(torch.autograd.Function):
    """``sqrt`` with the subgradient 0 at 0 (torch's derivative there is inf, and inf * 0 is
    NaN): the Smagorinsky ``|S|`` of a fluid at rest would otherwise poison every gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.where(y > 0, 0.5 * grad / y, torch.zeros_like(grad))


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` for ``x >= 0`` whose gradient is finite (0) where ``x = 0``."""
    return _SafeSqrt.apply(x)


__all__ = ["safe_sqrt"]
