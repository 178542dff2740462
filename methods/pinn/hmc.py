"""Hamiltonian Monte Carlo in torch: leapfrog, Metropolis correction, warm-up adaptation.

Samples ``theta ~ exp(-U(theta))`` for a differentiable potential ``U`` (Neal 2011). The
warm-up (burn-in) adapts, and its draws are discarded:

* the step size by dual averaging towards a target acceptance rate (Hoffman & Gelman
  2014, Alg. 5; the final step size is the averaged iterate);
* optionally a diagonal mass matrix from the variance of the draws of the middle half of
  the warm-up (Stan's windowed scheme, one window), after which step-size adaptation
  restarts;
* whatever the caller adapts in ``on_warmup`` (e.g. the term weights of a BPINN): the
  potential may change during warm-up, never after, so the kept draws come from one
  fixed target.

Each sampling iteration jitters the step size by +-10% so fixed-length trajectories do not
resonate with periodic directions of the target.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Potential = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class HMCResult:
    """Kept draws ``samples (S, D)`` and what the chain did."""

    samples: torch.Tensor
    step_size: float
    accept_rate: float  # mean acceptance probability over the kept phase
    divergent: int  # proposals with a non-finite or exploding energy (rejected)
    n_grad: int  # gradient evaluations, warm-up included
    seconds: float
    stopped: str = "completed"  # or "time_limit" (fewer draws than asked)
    warmup_done: int = 0  # warm-up iterations run (fewer than asked when time ran out)
    potential: list[float] = field(default_factory=list)  # U at every kept draw


def value_and_grad(potential: Potential, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``U(theta)`` and its gradient, both detached."""
    th = theta.detach().requires_grad_(True)
    u = potential(th)
    (g,) = torch.autograd.grad(u, th)
    return u.detach(), g.detach()


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator, dtype=torch.float64, device=generator.device))


def momentum(theta: torch.Tensor, inv_mass: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A momentum draw ``N(0, M)`` shaped like ``theta``, made on the generator's device
    and moved to ``theta``'s: the chain's random stream is the same on a CPU and a GPU."""
    z = torch.randn(theta.shape, generator=generator, dtype=theta.dtype, device=generator.device)
    return z.to(theta.device) / inv_mass.sqrt()


def initial_step(potential: Potential, theta: torch.Tensor, step: float, generator: torch.Generator,
                 inv_mass: torch.Tensor | None = None, max_tries: int = 60) -> float:
    """A reasonable first step size (Hoffman & Gelman 2014, Alg. 4): double or halve
    ``step`` until the acceptance probability of one leapfrog step crosses 1/2."""
    inv_mass = torch.ones_like(theta) if inv_mass is None else inv_mass
    u, g = value_and_grad(potential, theta)

    def log_accept(eps: float) -> float:
        p = momentum(theta, inv_mass, generator)
        pn = p - 0.5 * eps * g
        th = theta + eps * inv_mass * pn
        un, gn = value_and_grad(potential, th)
        pn = pn - 0.5 * eps * gn
        val = float(u + 0.5 * (p * p * inv_mass).sum() - un - 0.5 * (pn * pn * inv_mass).sum())
        return val if math.isfinite(val) else -math.inf

    up = log_accept(step) > math.log(0.5)
    for _ in range(max_tries):
        nxt = step * 2.0 if up else step / 2.0
        if (log_accept(nxt) > math.log(0.5)) != up:
            return step if up else nxt
        step = nxt
    return step


class _DualAveraging:
    """Step-size adaptation of Hoffman & Gelman (2014), eq. (6) with their constants."""

    def __init__(self, step: float, target: float) -> None:
        self.mu, self.target = math.log(10.0 * step), target
        self.h_bar, self.log_bar, self.m = 0.0, 0.0, 0
        self.log_step = math.log(step)

    def update(self, accept: float) -> float:
        self.m += 1
        eta = 1.0 / (self.m + 10.0)
        self.h_bar = (1.0 - eta) * self.h_bar + eta * (self.target - accept)
        self.log_step = self.mu - math.sqrt(self.m) / 0.05 * self.h_bar
        w = self.m**-0.75
        self.log_bar = w * self.log_step + (1.0 - w) * self.log_bar
        return math.exp(self.log_step)

    @property
    def final(self) -> float:
        return math.exp(self.log_bar)


def hmc(
    potential: Potential,
    theta0: torch.Tensor,
    *,
    n_samples: int,
    n_warmup: int,
    n_leapfrog: int,
    generator: torch.Generator,
    step_size: float = 0.1,
    target_accept: float = 0.75,
    adapt_mass: bool = True,
    thin: int = 1,
    on_warmup: Callable[[int, torch.Tensor], bool] | None = None,
    check: Callable[[], None] | None = None,
    time_limit_s: float = math.inf,
    warmup_time_s: float = math.inf,
) -> HMCResult:
    """Draw ``n_samples`` (every ``thin``-th iteration after ``n_warmup``) from
    ``exp(-potential)``, starting at ``theta0 (D,)``.

    ``on_warmup(iteration, theta)`` runs after each warm-up iteration; it returns True
    when it changed the potential (the cached energy is then recomputed). ``check()``
    runs every iteration (e.g. a deadline that raises). A warm-up still running after
    ``warmup_time_s`` ends there (``warmup_done`` < ``n_warmup``); past ``time_limit_s``
    (both counted from the start) the chain stops and returns the draws so far
    (``stopped = "time_limit"``). The step size kept for sampling is the dual-averaging
    average; after a warm-up cut short, the smaller of it and the last iterate (the
    average still remembers the large exploratory steps of the first iterations)."""
    t0 = time.perf_counter()
    theta = theta0.detach().clone()
    inv_mass = torch.ones_like(theta)
    u, g = value_and_grad(potential, theta)
    n_grad, divergent = 1, 0
    dual = _DualAveraging(step_size, target_accept)
    eps = step_size
    # One mass-matrix window over the middle half of the warm-up; too short a warm-up
    # (< 40 iterations) keeps the identity, as a variance from a few draws is noise.
    window = (n_warmup // 4, (3 * n_warmup) // 4) if adapt_mass and n_warmup >= 40 else (n_warmup, n_warmup)
    draws: list[torch.Tensor] = []
    kept: list[torch.Tensor] = []
    energies: list[float] = []
    accept_sum, n_kept_iters, stopped = 0.0, 0, "completed"
    total = n_warmup + n_samples * thin
    for it in range(total):
        if check is not None:
            check()
        elapsed = time.perf_counter() - t0
        if it < n_warmup and elapsed > warmup_time_s:  # cut the warm-up short
            total, n_warmup = total - (n_warmup - it), it
            eps = min(dual.final, eps) if dual.m else eps
        if elapsed > time_limit_s and it >= n_warmup:
            stopped = "time_limit"
            break
        if it >= total:
            break
        warm = it < n_warmup
        step = eps if warm else eps * (0.9 + 0.2 * _uniform(generator))
        p = momentum(theta, inv_mass, generator)
        h0 = u + 0.5 * (p * p * inv_mass).sum()
        th, pn, gn = theta, p - 0.5 * step * g, g
        un = u
        for j in range(n_leapfrog):
            th = th + step * inv_mass * pn
            un, gn = value_and_grad(potential, th)
            n_grad += 1
            if not torch.isfinite(un):
                break
            pn = pn - (step if j < n_leapfrog - 1 else 0.5 * step) * gn
        h1 = un + 0.5 * (pn * pn * inv_mass).sum()
        log_ratio = float(h0 - h1)
        if not math.isfinite(log_ratio) or log_ratio < -1000.0:
            divergent += 1
            accept = 0.0
        else:
            accept = min(1.0, math.exp(log_ratio))
        if _uniform(generator) < accept:
            theta, u, g = th.detach(), un, gn
        if warm:
            eps = dual.update(accept)
            if window[0] <= it < window[1]:
                draws.append(theta.clone())
            if it + 1 == window[1] and len(draws) > 2:
                var = torch.stack(draws).var(dim=0)
                n = len(draws)  # shrink towards a small constant, as Stan does
                inv_mass = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
                eps = initial_step(potential, theta, eps, generator, inv_mass)
                n_grad += 2  # at least one trial step (two gradients)
                dual = _DualAveraging(eps, target_accept)
            if on_warmup is not None and on_warmup(it, theta):
                u, g = value_and_grad(potential, theta)
                n_grad += 1
            if it + 1 == n_warmup:
                eps = dual.final
        else:
            accept_sum += accept
            n_kept_iters += 1
            if (it - n_warmup + 1) % thin == 0:
                kept.append(theta.clone())
                energies.append(float(u))
    if not kept:
        kept.append(theta.clone())
        energies.append(float(u))
    return HMCResult(
        samples=torch.stack(kept),
        step_size=eps,
        accept_rate=accept_sum / max(n_kept_iters, 1),
        divergent=divergent,
        n_grad=n_grad,
        seconds=time.perf_counter() - t0,
        stopped=stopped,
        warmup_done=n_warmup,
        potential=energies,
    )


__all__ = ["hmc", "HMCResult", "initial_step", "value_and_grad"]
