"""The one ensemble mechanism: deep ensembles (Lakshminarayanan, Pritzel & Blundell,
NeurIPS 2017) of networks trained one after another by the shared loop.

Member ``m`` of a cell seeded ``s`` trains on ``Budget.split(M)`` (1/M of the epochs
and of the time cap, so an ensemble costs what one network costs) under the seed
``member_seed(s, m)``: its initialisation, its batch order and every draw from torch's
global random stream (training dropout masks) depend on ``(s, m)`` alone, never on the
members trained before it. Used by every ensemble in the suite (`fno_ensemble`,
NeuroScale's members) through `NeuralMethod.ensemble_size`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple, TypeVar

import numpy as np
import torch

from nskernel import Budget, Context

T = TypeVar("T")


def member_seed(seed: int, member: int) -> int:
    """Independent, reproducible seed of ensemble member ``member`` of a cell seeded ``seed``."""
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0] & 0x7FFFFFFF)


def train_members(n: int, budget: Budget, ctx: Context, train_one: Callable[[int, Budget, Context], T]) -> list[T]:
    """``train_one(m, share, member_ctx)`` for ``n`` members, one after another: each with
    ``budget.split(n)`` and ``ctx.seed = member_seed(ctx.seed, m)``, inside a forked
    torch random stream seeded with that seed (the caller's stream is left untouched)."""
    if n < 1:
        raise ValueError(f"an ensemble needs at least one member, got {n}")
    share = budget.split(n)
    devices = [torch.device(ctx.device)] if ctx.device.is_cuda else []
    out = []
    for m in range(n):
        seed = member_seed(ctx.seed, m)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out.append(train_one(m, share, dataclasses.replace(ctx, seed=seed)))
    return out


def mixture_moments(means: torch.Tensor, variances: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Moments of the equal-weight mixture of ``N(means[s], variances[s])`` over the
    leading axis ``s``; ``variances=None`` means point predictions (zero aleatoric):

        mean = (1/S) sum_s mu_s,  var = (1/S) sum_s sigma_s^2 + (1/S) sum_s (mu_s - mean)^2.
    """
    mean = means.mean(0)
    epistemic = (means - mean).pow(2).mean(0)
    aleatoric = variances.mean(0) if variances is not None else torch.zeros_like(mean)
    return mean, aleatoric + epistemic


#: draws per prediction from a mixture (at least; rounded up to a multiple of its components)
MIN_DRAWS = 16


class Moments(NamedTuple):
    """A neural method's prediction of one batch at one k, physical units: the mean, the
    total variance (None: deterministic) and, for mixtures, the components
    ``(means (S, ...), variances (S, ...) or None)`` that `mixture_draws` samples."""

    mean: torch.Tensor
    var: torch.Tensor | None = None
    components: tuple[torch.Tensor, torch.Tensor | None] | None = None


def mixture_draws(means: np.ndarray, variances: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Draws ``(n, ...)`` from the equal-weight mixture of ``N(means[s], variances[s])``:
    ``n = S ceil(MIN_DRAWS / S)``, draw ``j`` from component ``j mod S`` (stratified, so
    every component has the same weight) plus its Gaussian noise, independent per point
    (the heads model no spatial correlation of the noise; docs/metrics.md says what that
    means for block averages). Without variances the draws are the components."""
    s = len(means)
    n = s * math.ceil(MIN_DRAWS / s) if variances is not None else s
    comp = np.arange(n) % s
    draws = means[comp].astype(np.float64)
    if variances is not None:
        draws += np.sqrt(np.maximum(variances[comp], 0.0)) * rng.standard_normal(draws.shape)
    return draws


__all__ = ["MIN_DRAWS", "Moments", "member_seed", "mixture_draws", "mixture_moments", "train_members"]
