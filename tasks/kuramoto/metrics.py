"""The Kuramoto task's own metrics (`Task.metrics`), on node fields ``(N, C, n_k)``.

* ``sym_rel_l2``: ROMA's symmetric relative L2 error (their eq. for Table 2),
  ``sqrt(mean_a (|p_a - y_a| / (|p_a| + |y_a|))^2)`` per sample, ``|.|`` the Euclidean
  norm of a node's channel vector (here the local order parameter ``(Re z, Im z)``); a
  node where both vanish contributes 0. In [0, 1]: 0 for the truth, 1 for ``p = -y``.
* ``order_err``: the error of the global order parameter ``r = |sum_a n_a z_a| / n``
  reconstructed from the coarse prediction with the super-nodes' member counts ``n_a``
  (the member mean preserves sums, so the truth's ``r`` is exactly the fine one):
  ``|r(p) - r(y)|`` per sample.
* ``disc``: the law every ``R_k`` of the truth satisfies exactly: a mean of unit vectors
  lies in the unit disc, ``|z_a| <= 1``. The RMS over super-nodes of ``max(|z_a| - 1, 0)``;
  `disc_law` is its differentiable torch form (``TaskSpec.laws``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nskernel import Metric, TaskSpec


def sym_rel_l2(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """ROMA's symmetric relative L2 per sample over nodes (channel axis 1)."""
    p = np.asarray(pred, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    diff = np.linalg.norm(p - y, axis=1)
    scale = np.linalg.norm(p, axis=1) + np.linalg.norm(y, axis=1)
    ratio = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    return np.sqrt((ratio.reshape(len(ratio), -1) ** 2).mean(axis=1))


def order_parameter(z: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``|sum_a n_a (x_a + i y_a)| / sum_a n_a`` per sample of ``z (N, 2, n_k)``."""
    z = np.asarray(z, dtype=np.float64)
    w = np.asarray(sizes, dtype=np.float64) / np.sum(sizes)
    return np.hypot(z[:, 0] @ w, z[:, 1] @ w)


def _sizes(spec: TaskSpec, k: int) -> np.ndarray:
    if spec.graph is None:
        raise ValueError(f"order_err needs a graph task; {spec.name} is on a {spec.kind}")
    return spec.graph.sizes(k)


def order_err(pred: np.ndarray, target: np.ndarray, spec: TaskSpec, k: int) -> np.ndarray:
    """``|r(pred) - r(target)|`` per sample (module docstring)."""
    sizes = _sizes(spec, k)
    return np.abs(order_parameter(pred, sizes) - order_parameter(target, sizes))


def disc(pred: np.ndarray) -> np.ndarray:
    """RMS over super-nodes of ``max(|z_a| - 1, 0)`` per sample of ``pred (N, 2, n_k)``."""
    p = np.asarray(pred, dtype=np.float64)
    excess = np.maximum(np.hypot(p[:, 0], p[:, 1]) - 1.0, 0.0)
    return np.sqrt((excess.reshape(len(p), -1) ** 2).mean(axis=1))


def disc_law(u: Any, inputs: Any, k: int) -> Any:
    """`disc` as a torch law vector ``(N, 1)``, differentiable in ``u (N, 2, n_k)``."""
    import torch

    tiny = torch.finfo(u.dtype).tiny  # keeps the gradient of sqrt finite at 0 (value off by sqrt(tiny))
    excess = torch.relu(torch.sqrt(u[:, 0] ** 2 + u[:, 1] ** 2 + tiny) - 1.0)
    return excess.reshape(len(u), -1).pow(2).mean(dim=1).clamp_min(tiny).sqrt()[:, None]


SYM_REL_L2 = Metric(
    "sym_rel_l2", "ROMA's symmetric relative L2: sqrt(mean over super-nodes of (|p - y| / (|p| + |y|))^2)",
    fn=lambda p, y, x, k, spec: sym_rel_l2(p.mean, y), group="accuracy")
ORDER_ERR = Metric(
    "order_err", "|r_pred - r_true| of the global order parameter r = |sum_a n_a z_a| / n (n_a member counts)",
    fn=lambda p, y, x, k, spec: order_err(p.mean, y, spec, k), group="task")
DISC = Metric(
    "disc", "RMS over super-nodes of max(|z_a| - 1, 0): a member mean of unit vectors lies in the unit disc "
    "(0 for the truth)", fn=lambda p, y, x, k, spec: disc(p.mean), group="physics", headline=True)

__all__ = ["DISC", "ORDER_ERR", "SYM_REL_L2", "disc", "disc_law", "order_err", "order_parameter", "sym_rel_l2"]
