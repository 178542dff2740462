"""Grid helpers shared by the convolutional and attention networks: which axes of a task
are periodic, and padding that is circular on those axes and zero on the others.

Written by hand because ``F.pad`` pads one mode for all axes and ``nn.Conv2d``'s
``padding_mode`` cannot mix circular and zero padding per axis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def periodic_axes(boundary: str) -> tuple[bool, bool]:
    """(rows / y periodic, columns / x periodic) from ``TaskSpec.boundary``
    ("periodic": both; "periodic-x/...": the columns)."""
    if boundary == "periodic":
        return True, True
    return False, boundary.startswith("periodic-x")


def pad_axes(x: torch.Tensor, p: int, periodic: tuple[bool, bool]) -> torch.Tensor:
    """``x (B, C, H, W)`` padded by ``p`` cells on each side: circularly on the periodic
    axes of ``periodic`` (rows, columns), with zeros on the others."""
    if p == 0:
        return x
    rows, cols = periodic
    x = F.pad(x, (p, p, 0, 0), mode="circular" if cols else "constant")
    return F.pad(x, (0, 0, p, p), mode="circular" if rows else "constant")


__all__ = ["pad_axes", "periodic_axes"]
