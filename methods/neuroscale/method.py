"""`neuroscale`: the multiscale cross-attention operator this suite evaluates.

The Method wires the network (`model.py`), its losses (`losses.py`) and its uncertainty
(`uncertainty.py`) into the shared training loop through `NeuralMethod`. Its deep
ensemble of ``ensemble`` members is the suite's one ensemble mechanism
(`methods.ensemble`): each member on its own seed and an equal share of the budget.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.ensemble import Moments, member_seed, mixture_moments
from methods.neural import NeuralMethod
from methods.neuroscale.losses import FORMS, PhysicsLoss, gaussian_nll, mse
from methods.neuroscale.model import NeuroScaleNet
from methods.neuroscale.uncertainty import mc_dropout
from nskernel import Budget, Context, Dataset, Prediction, TaskSpec
from nskernel.errors import NotApplicable
from nskernel.grid import prolong, restrict


class NeuroScale(NeuralMethod):
    """Cross-scale attention operator with physics regularisation and uncertainty.

    ``gamma`` weighs the physics loss (``physics``: ``laws``, the constraints the filtered
    truth satisfies exactly, or ``residual``, the proposal's PDE residuals; its weight is
    ramped in after ``phys_warmup`` of the steps), ``beta`` the Gaussian NLL (``beta=0`` removes the
    variance head: deterministic predictions), ``scales`` is the number of hierarchy
    levels L+1 (1 = single-scale attention), ``ensemble`` the number M of members and
    ``dropout`` the (MC-)dropout rate. See docs/neuroscale.md.
    """

    name = "neuroscale"
    summary = "cross-scale attention operator, physics-regularised, ensemble + MC-dropout uncertainty"

    gamma: float = 0.1
    beta: float = 0.1
    scales: int = 3
    ensemble: int = 2
    dropout: float = 0.05
    width: int = 32
    heads: int = 4
    window: int = 3
    layers: int = 2
    stem: int = 4
    fourier: int = 4
    global_tokens: int = 4
    spectral_modes: int = 0
    mc_samples: int = 4
    physics: str = "laws"
    phys_warmup: float = 0.0
    lambda_fine: float = 1.0
    lambda_coarse: float = 0.0
    lambda_div: float = 1.0
    lambda_law: float = 1.0
    lambda_balance: float = 0.0
    phys_batch: int = 4
    lr: float = 1e-2
    weight_decay: float = 1e-4

    def check_params(self) -> None:
        super().check_params()
        checks = {
            "gamma": self.gamma >= 0, "beta": self.beta >= 0, "scales": self.scales >= 1,
            "ensemble": self.ensemble >= 1, "dropout": 0 <= self.dropout < 1,
            "width": self.width >= 1 and self.width % self.heads == 0, "heads": self.heads >= 1,
            "window": self.window >= 1 and self.window % 2 == 1, "layers": self.layers >= 0,
            "stem": self.stem >= 1 and self.stem & (self.stem - 1) == 0, "fourier": self.fourier >= 0,
            "global_tokens": self.global_tokens >= 1, "spectral_modes": self.spectral_modes >= 0,
            "mc_samples": self.mc_samples >= 1,
            "lambda_fine": self.lambda_fine >= 0, "lambda_coarse": self.lambda_coarse >= 0,
            "lambda_div": self.lambda_div >= 0, "lambda_law": self.lambda_law >= 0,
            "lambda_balance": self.lambda_balance >= 0, "physics": self.physics in FORMS,
            "phys_warmup": 0 <= self.phys_warmup < 1, "phys_batch": self.phys_batch >= 1, "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
        }
        bad = [n for n, ok in checks.items() if not ok]
        if bad:
            values = self.get_params()
            raise ValueError(f"neuroscale: invalid {', '.join(f'{n}={values[n]!r}' for n in bad)} "
                             f"(physics: one of {', '.join(FORMS)}; phys_warmup: a fraction in [0, 1))")

    @property  # type: ignore[override]  # per instance: beta=0 gives a deterministic method
    def probabilistic(self) -> bool:
        return self.beta > 0

    @property
    def factor(self) -> int:
        """Fine grids must be divisible by this (the coarsest level's block size)."""
        return self.stem * 2 ** (self.scales - 1)

    def not_applicable(self, spec: TaskSpec) -> str | None:
        if (reason := super().not_applicable(spec)) is not None:  # the augment mode (NeuralMethod)
            return reason
        h, w = spec.fine_shape
        if h % self.factor or w % self.factor:
            return f"fine grid {h}x{w} is not divisible by stem*2^(scales-1) = {self.factor}"
        return None

    # -- NeuralMethod hooks ----------------------------------------------------------
    def ensemble_size(self) -> int | None:
        return self.ensemble

    def build_model(self, spec: TaskSpec) -> nn.Module:
        # Called inside the member's own seeded random stream (methods.ensemble).
        return NeuroScaleNet(
            spec.in_channels, spec.out_channels, width=self.width, heads=self.heads,
            window=self.window, scales=self.scales, layers=self.layers, stem=self.stem,
            fourier=self.fourier, global_tokens=self.global_tokens, dropout=self.dropout,
            variance=self.probabilistic, log2k_centre=self._log2k_centre,
            periodic=spec.boundary == "periodic", spectral_modes=self.spectral_modes,
        )

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        u, feats = self.model(x)  # normalised fine field and features
        data, nll = [], []
        for k, y in ys.items():
            yn = (y - self._y_mean) / self._y_std
            mu = restrict(u, k)
            data.append(mse(mu, yn))
            if self.model.var_head is not None:
                # Detached mean and features: the NLL trains the variance head only, so it
                # cannot trade accuracy of the mean for a better likelihood.
                logvar = self.model.var_head(restrict(feats.detach(), k), k)
                nll.append(gaussian_nll(mu.detach(), logvar, yn))
        terms = {"data": torch.stack(data).mean()}
        if nll:
            terms["nll"] = self.beta * torch.stack(nll).mean()
        if self._physics is not None:
            # The loop shuffles batches, so the first `phys_batch` samples are a random
            # sub-batch: an unbiased estimate of the batch-mean physics loss. Residuals
            # that run a solver through autograd (turbulence) cost ~10x the network.
            p = min(self.phys_batch, len(idx))
            raw = self._x_raw[idx[:p]]
            if self.batch_transform is not None:  # an augmented batch: its inputs moved alike
                raw = self.batch_transform.apply(raw, tuple(self._spec.in_parity))
            weight = self.gamma * self.warmup_factor(self.train_progress)
            for n, t in self._physics(self.decode(u[:p]), raw).items():
                terms[n] = weight * t
        return terms

    def warmup_factor(self, progress: float) -> float:
        """Physics weight multiplier at ``progress`` (share of the planned steps done): 0
        for the first ``phys_warmup`` of training (the data term alone), then a linear
        ramp to 1 over the next ``phys_warmup``."""
        w = self.phys_warmup
        return 1.0 if w == 0 else min(1.0, max(0.0, (progress - w) / w))

    def val_prediction(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
        u, _ = self.model(x)  # the member being trained, dropout off: its mean field
        return {k: self.decode(restrict(u, k)) for k in ks}

    def predict_normalised(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, Moments]:
        """Mixture over members x MC-dropout masks, in physical units, with its components
        when probabilistic; each network pass serves every k (the masks do not depend on k)."""
        mc = self.probabilistic and self.dropout > 0 and not self.in_rollout
        draws = self.mc_samples if mc else 1
        means: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
        variances: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
        for m, model in enumerate(self.networks):
            for t in range(draws):
                with mc_dropout(model, seed=member_seed(member_seed(self._ctx.seed, m), t + 1), enabled=mc):
                    preds = model.predict_many(x, ks)
                for k, (mu, logvar) in preds.items():
                    means[k].append(mu)
                    if logvar is not None:
                        variances[k].append(torch.exp(logvar))
        out: dict[int, Moments] = {}
        for k in ks:
            comp_means = torch.stack(means[k])
            comp_vars = torch.stack(variances[k]) if variances[k] else None
            mean, var = mixture_moments(comp_means, comp_vars)
            if not self.probabilistic:
                out[k] = Moments(self.decode(mean))
                continue
            scale = self._y_std**2
            # a single component without a variance is a point prediction: no draws
            comps = None if len(comp_means) < 2 and comp_vars is None else (
                self.decode(comp_means), None if comp_vars is None else comp_vars * scale)
            out[k] = Moments(self.decode(mean), var * scale, comps)
        return out

    # -- contract --------------------------------------------------------------------
    def fit(self, train_data: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> NeuroScale:
        """Train ``ensemble`` members by the one ensemble mechanism (`methods.ensemble`):
        each on ``budget.split(M)`` (1/M of the seconds and of the epochs, at least one)
        and its own seed. An ensemble costs what one network costs, so larger M means
        less training per member."""
        reason = self.not_applicable(spec)
        if reason:
            raise NotApplicable(reason)
        k_train = tuple(sorted(train_data.targets))
        self._log2k_centre = float(np.mean([math.log2(k) for k in k_train]))
        dt = {"dtype": ctx.torch_dtype, "device": ctx.device}
        self._physics = None
        if self.gamma > 0:
            sub = slice(0, min(len(train_data), 8))  # scales are normalisers: 8 samples suffice
            phys = PhysicsLoss.from_data(
                spec, torch.as_tensor(train_data.inputs[sub], **dt),
                {k: torch.as_tensor(v[sub], **dt) for k, v in train_data.targets.items()},
                self.lambda_fine, self.lambda_coarse, self.lambda_div, self.physics, self.lambda_law,
                self.lambda_balance,
            )
            self._physics = phys if phys.active else None
        # Physics hooks need the inputs in physical units, indexed like the loop's batches.
        self._x_raw = torch.as_tensor(train_data.inputs, **dt)
        self._member_budget = budget.split(self.ensemble)
        return super().fit(train_data, spec, budget, ctx)

    def advance(self, state: np.ndarray, k: int) -> Prediction:
        """Rollout step: the coarse state, prolonged piecewise-constantly to the fine grid,
        is the fine input; the prediction at factor ``k`` is the next coarse state. The
        network is not evaluated on the coarse grid itself because its levels are block
        sizes in fine cells (``stem * 2^l``), which would change physical size with k.
        A rollout is scored on its mean only, so MC dropout is off here (the standard
        weight-scaling estimate of the MC mean): it would cost ``mc_samples`` times more."""
        if not self._spec.time_dependent:
            return super().advance(state, k)
        with self.rollout_mode():
            return self.predict(prolong(np.asarray(state), k), k)

    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {}, {"log2k_centre": self._log2k_centre}  # the variance head's centre of log2 k

    def load_extra_state(self, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
        self._log2k_centre = float(values["log2k_centre"])
        self._physics = None  # a training loss: not needed to predict

    def diagnostics(self) -> dict[str, Any]:
        return {
            **super().diagnostics(),
            "member_budget": {"epochs": self._member_budget.epochs, "max_train_s": self._member_budget.max_train_s},
            "physics_scales": None if self._physics is None else dict(self._physics.scales),
            "n_params_member": sum(p.numel() for p in self.networks[0].parameters()),
        }
