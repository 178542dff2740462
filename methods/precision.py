"""Mixed precision for the training loop (`NeuralMethod.amp`, `methods.training.train`;
docs/training.md): bf16 autocast of the network's forward pass while it trains.

* Only the network runs under ``torch.autocast(device, dtype=torch.bfloat16)``: its
  outputs are cast back to the context's dtype (float32), so every loss, physics residual
  and task solver the loss calls runs in float32. bf16 has float32's exponent range, so
  no gradient scaler is needed (fp16 would need one; it is not offered).
* Spectral layers stay in float32: FFTs have no bf16 kernels (``torch.fft`` raises
  "Unsupported dtype BFloat16"; CPU autocast promotes FFTs to float32 by itself, CUDA
  autocast does not). A layer runs outside autocast on float32 inputs when it is a
  neuraloperator spectral convolution, owns complex parameters (Fourier weights, e.g.
  gfno's), or sets ``keep_fp32 = True``.
* Only in training mode: validation, prediction and timing run the float32 network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

#: the lower precision of ``amp``
AMP_DTYPE = torch.bfloat16


def _cast(obj: Any, dtype: torch.dtype) -> Any:
    """Lower-precision floating tensors in ``obj`` (tensors, tuples, lists, dicts) cast
    up to ``dtype``; every other value unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.to(dtype) if obj.is_floating_point() and obj.element_size() < 4 else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_cast(o, dtype) for o in obj)
    if isinstance(obj, dict):
        return {k: _cast(v, dtype) for k, v in obj.items()}
    return obj


def keeps_fp32(module: torch.nn.Module) -> bool:
    """Whether ``module`` runs outside autocast (spectral layers; see the module docstring)."""
    if getattr(module, "keep_fp32", False) or any(p.is_complex() for p in module.parameters(recurse=False)):
        return True
    try:
        from neuralop.layers.base_spectral_conv import BaseSpectralConv
    except ImportError:  # pragma: no cover -- neuraloperator is a dependency of the suite
        return False
    return isinstance(module, BaseSpectralConv)


@contextmanager
def _patched(module: torch.nn.Module, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """``module.forward`` replaced by ``make(forward)`` on this instance, then put back."""
    had = "forward" in module.__dict__
    own = module.__dict__.get("forward")
    module.forward = make(module.forward)
    try:
        yield
    finally:
        if had:
            module.forward = own
        else:
            del module.forward


def check_amp(device_type: str, dtype: torch.dtype) -> None:
    """Raise ``ValueError`` where bf16 autocast cannot run."""
    if dtype != torch.float32:
        raise ValueError(f"amp needs float32 weights (--dtype float32), not {dtype}")
    if not torch.amp.is_autocast_available(device_type):
        raise ValueError(f"amp: torch has no autocast on {device_type!r}")
    if device_type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        raise ValueError("amp: this GPU has no bf16 arithmetic (it needs compute capability 8.0, Ampere, or newer)")


@contextmanager
def mixed_precision(model: torch.nn.Module, device_type: str, dtype: torch.dtype,
                    enabled: bool = True) -> Iterator[None]:
    """While inside: ``model``'s forward runs under bf16 autocast when ``model.training``
    (outputs cast back to ``dtype``), its spectral layers in float32. A no-op unless
    ``enabled``."""
    if not enabled:
        yield
        return
    check_amp(device_type, dtype)

    def autocast(forward: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            if not model.training:
                return forward(*args, **kwargs)
            with torch.autocast(device_type, dtype=AMP_DTYPE):
                return _cast(forward(*args, **kwargs), dtype)
        return run

    def full(forward: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            if not torch.is_autocast_enabled(device_type):
                return forward(*args, **kwargs)
            with torch.autocast(device_type, enabled=False):
                return forward(*_cast(args, torch.float32), **_cast(kwargs, torch.float32))
        return run

    with ExitStack() as stack:
        for m in model.modules():
            if m is not model and keeps_fp32(m):
                stack.enter_context(_patched(m, full))
        stack.enter_context(_patched(model, autocast))
        yield


__all__ = ["AMP_DTYPE", "check_amp", "keeps_fp32", "mixed_precision"]
