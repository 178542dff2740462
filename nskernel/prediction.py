"""`Prediction`: what a method returns for a batch at one factor k."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """Predictive mean ``(N, C, h, w)``; for probabilistic methods the total predictive
    variance of the same shape (its Gaussian summary) and, where the method has them,
    ``samples`` ``(S, N, C, h, w)``: S draws from its predictive distribution (ensemble
    members, MC-dropout passes, HMC draws, each with its own noise where it models one),
    which sample-based scores use and which make the law of a block average exact
    (each draw is restricted on its own)."""

    mean: np.ndarray
    var: np.ndarray | None = None
    samples: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.var is not None and self.var.shape != self.mean.shape:
            raise ValueError(f"variance shape {self.var.shape} differs from the mean's {self.mean.shape}")
        if self.samples is not None and (self.samples.ndim != self.mean.ndim + 1
                                         or self.samples.shape[1:] != self.mean.shape or len(self.samples) < 2):
            raise ValueError(f"samples must be (S >= 2, *{self.mean.shape}), got {self.samples.shape}")
