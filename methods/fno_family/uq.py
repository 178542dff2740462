"""UQ references for NeuroScale's calibration: `fno_ensemble` and `fno_mcdropout`.

* `fno_ensemble`: a deep ensemble (Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017) of
  ``n_members`` FNOs with Gaussian heads. Each member is the `fno` network with
  ``2 C_out`` outputs (mean, softplus variance on the fine grid), trained by the shared
  loop with the beta-NLL of Seitzer et al. (ICLR 2022; ``beta=0`` is the plain Gaussian
  NLL of the paper), on its own seed and ``1/n_members`` of the budget (`Budget.split`).
  Prediction: the Gaussian mixture's mean and total variance.
* `fno_mcdropout`: MC dropout (Gal & Ghahramani, ICML 2016) with neuraloperator's
  channel-MLP dropout, kept on at test time for ``n_samples`` passes; the mean is
  trained like `fno` (relative L2); a homoscedastic per-channel noise variance (the
  ``tau^-1`` term of Gal's predictive variance) is fitted after training by moment
  matching on training samples and added to the MC sample variance.

A head's variance at factor k is ``(R_k sigma)^2`` of its fine-grid standard deviation
field: errors treated as fully correlated within a k x k block (exact for errors smooth
at the block scale, the largest variance a block mean can have otherwise), which keeps
one head valid for unseen k. MC dropout restricts each sample, so its spread needs no
such assumption.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from methods.dropout import use_fast_dropout
from methods.ensemble import Moments, mixture_moments
from methods.fno_family.base import FourierOperator
from nskernel import Budget, Context, Dataset, TaskSpec, TimingHints
from nskernel.grid import restrict

VAR_FLOOR = 1e-6  # normalised units: keeps the NLL finite for a perfect fit


class FNOEnsemble(FourierOperator):
    name = "fno_ensemble"
    summary = "deep ensemble of FNOs with Gaussian heads (Lakshminarayanan et al.)"
    probabilistic = True
    timing = TimingHints(repeats=3)  # each timed call runs every member

    n_members: int = 3
    beta: float = 0.5

    def check_params(self) -> None:
        super().check_params()
        if self.n_members < 2:
            raise ValueError("an ensemble needs n_members >= 2")

    def ensemble_size(self) -> int | None:
        return self.n_members

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        return self.fno_network(spec, out_channels=2 * spec.out_channels)

    @staticmethod
    def _heads(out: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised mean and variance at factor k from the raw network output."""
        c = out.shape[1] // 2
        return restrict(out[:, :c], k), restrict(torch.sqrt(F.softplus(out[:, c:]) + VAR_FLOOR), k) ** 2

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(x)
        nll = 0.0
        for k, y in ys.items():
            mu, var = self._heads(out, k)
            yn = (y - self._y_mean) / self._y_std
            point = 0.5 * (torch.log(var) + (yn - mu) ** 2 / var)
            if self.beta:  # beta-NLL: weight each point by var^beta (no gradient through it)
                point = point * var.detach() ** self.beta
            nll = nll + point.mean()
        return {"nll": nll / len(ys)}

    def val_prediction(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, torch.Tensor]:
        out = self.model(x)
        return {k: self.decode(self._heads(out, k)[0]) for k in ks}

    def predict_normalised(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, Moments]:
        """The members' Gaussian mixture (mean, total variance, components) in physical units."""
        heads = [{k: self._heads(out, k) for k in ks} for out in (net(x) for net in self.networks)]
        preds = {}
        for k in ks:
            means, variances = torch.stack([h[k][0] for h in heads]), torch.stack([h[k][1] for h in heads])
            mean, var = mixture_moments(means, variances)
            scale = self._y_std**2
            preds[k] = Moments(self.decode(mean), var * scale, (self.decode(means), variances * scale))
        return preds

    def estimate_s(self, budget: Budget) -> float:
        return budget.expected_train_s() + budget.expected_eval_s() * self.n_members / 2


class FNOMCDropout(FourierOperator):
    name = "fno_mcdropout"
    summary = "FNO with channel-MLP dropout kept on at test time (MC dropout)"
    probabilistic = True
    # Each timed call is n_samples network passes: fewer repeats keep the cell in time.
    timing = TimingHints(repeats=2, attempts=1)

    dropout: float = 0.1
    n_samples: int = 10

    def check_params(self) -> None:
        super().check_params()
        if not 0.0 < self.dropout < 1.0 or self.n_samples < 2:
            raise ValueError("need 0 < dropout < 1 and n_samples >= 2")

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        # The `fno` network plus neuraloperator's channel-MLP dropout, with the same
        # masks' law drawn more cheaply on the CPU (methods/dropout.py).
        return use_fast_dropout(self.fno_network(spec, dropout=self.dropout))

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"data": self.data_loss(self.model(x), ys)}

    def fit(self, train_data: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> FNOMCDropout:
        """`fno`'s training (dropout active), then the homoscedastic noise variance per
        channel by moment matching on up to 16 training samples: the MC predictive
        variance plus the noise equals the mean squared error of the MC mean. (Fitting
        it by likelihood on dropout-perturbed residuals counts the dropout spread twice:
        measured coverage_90 = 1.0, ECE 0.2 on Darcy small.)"""
        super().fit(train_data, spec, budget, ctx)
        n = min(len(train_data), 16)
        gap = []
        with torch.no_grad():
            x = self.encode(self._tensor(train_data.inputs[:n]))
            for k, (mean, var, _) in self._mc(x, tuple(train_data.targets)).items():
                yn = (self._tensor(train_data.targets[k][:n]) - self._y_mean) / self._y_std
                gap.append(((yn - mean) ** 2 - var).mean(dim=(0, 2, 3)))
        self._noise = torch.stack(gap).mean(0).clamp_min(VAR_FLOOR).view(1, -1, 1, 1)
        return self

    def extra_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {"noise": self._noise}, {}  # the fitted homoscedastic noise variance

    def load_extra_state(self, tensors: dict[str, torch.Tensor], values: dict[str, Any]) -> None:
        self._noise = tensors["noise"]

    def _mc(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """MC mean, variance and the passes themselves (normalised units) at every k in
        ``ks`` over ``n_samples`` dropout passes; each pass serves every k."""
        drops = [m for m in self.model.modules() if isinstance(m, torch.nn.Dropout)]
        with torch.random.fork_rng(devices=[] if x.device.type == "cpu" else [x.device]):
            torch.manual_seed(self._ctx.seed * 7919)  # the same masks on every call
            for d in drops:
                d.train()
            try:
                passes = [self.model(x) for _ in range(self.n_samples)]
            finally:
                for d in drops:
                    d.eval()
        out = {}
        for k in ks:
            samples = torch.stack([restrict(u, k) for u in passes])
            out[k] = samples.mean(dim=0), samples.var(dim=0), samples
        return out

    def predict_normalised(self, x: torch.Tensor, ks: tuple[int, ...]) -> dict[int, Moments]:
        """The MC mean and variance plus the noise; components: each pass with the noise."""
        scale = self._y_std**2
        if self.in_rollout:
            # A rollout is scored on its mean only: the dropout-off network (the standard
            # weight-scaling estimate of the MC mean) costs 1/n_samples of the MC passes.
            out = self.model(x)
            means = {k: restrict(out, k) for k in ks}
            return {k: Moments(self.decode(m), self._noise.expand_as(m) * scale) for k, m in means.items()}
        return {k: Moments(self.decode(mean), (var + self._noise) * scale,
                           (self.decode(passes), (self._noise * scale).expand_as(passes)))
                for k, (mean, var, passes) in self._mc(x, ks).items()}


__all__ = ["FNOEnsemble", "FNOMCDropout"]
