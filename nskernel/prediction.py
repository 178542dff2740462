"""`Prediction`: what a method returns for a batch at one factor k."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Prediction:
    """Predictive mean ``(N, C, h, w)`` and, for probabilistic methods, the total
    predictive variance of the same shape (Gaussian approximation)."""

    mean: np.ndarray
    var: np.ndarray | None = None
