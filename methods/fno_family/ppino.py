"""`ppino`: pseudo-physics-informed neural operator (Chen, Li, Long, Xu, Xing, Hochhalter &
Zhe, "Pseudo-Physics-Informed Neural Operators: Enhancing Operator Learning from Limited
Data", arXiv:2502.02682, 2025).

PPI-NO learns a "pseudo PDE" ``phi`` that maps the solution and its derivatives back to
the input, ``phi(u, grad u, grad^2 u) ~ a``, with a neighbourhood-aware convolution, and
alternates between fitting ``phi`` on labelled pairs and training the operator on the
data loss plus ``||phi(G(a')) - a'||`` on unlabelled inputs ``a'``. Our recipe, all on
the shared loop (`methods.training.train`, called once per phase):

1. the `fno` network on the data loss for half the epochs and half the time cap;
2. ``n_rounds`` times: (a) fit ``phi`` (3x3 conv on [u, u_x, u_y, u_xx, u_yy, u_xy] of
   the k0-grid output, k0 = the finest training factor; GELU; 1x1 conv) to map the
   training targets to ``R_k0`` of the normalised inputs, ``phi_epochs`` epochs;
   (b) train the FNO with ``phi`` frozen on ``data + pseudo_weight * ||phi(R_k0 G(a')) -
   R_k0 a'|| / ||R_k0 a'||`` for the remaining epochs / time split evenly over rounds.

Where this differs: the paper samples extra unlabelled inputs from the input
distribution; a method here only sees the training set, so the unlabelled inputs are
the training inputs moved by a random element of the task's symmetry group
(``spec.symmetry``; the training inputs themselves where the task declares none, and
then the pseudo-physics term acts as a physics-shaped regulariser on labelled inputs).
``phi`` lives on the coarse k0 grid because no fine solution is available for training.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from methods.augment import Augmenter
from methods.fno_family.base import FourierOperator
from methods.fno_family.gfno_layers import GROUP_NAMES, make_group, transform
from methods.neural import rel_l2_loss
from methods.training import to_context, train
from nskernel import Budget, Context, Dataset, TaskSpec
from nskernel.grid import restrict


def derivative_features(u: torch.Tensor, periodic: bool) -> torch.Tensor:
    """``[u, u_x, u_y, u_xx, u_yy, u_xy]`` per channel by central differences in index
    units (the grid spacing is absorbed by the feature normalisation)."""
    up = F.pad(u, (1, 1, 1, 1), mode="circular" if periodic else "replicate")
    c = up[..., 1:-1, 1:-1]
    ux = 0.5 * (up[..., 1:-1, 2:] - up[..., 1:-1, :-2])
    uy = 0.5 * (up[..., 2:, 1:-1] - up[..., :-2, 1:-1])
    uxx = up[..., 1:-1, 2:] - 2 * c + up[..., 1:-1, :-2]
    uyy = up[..., 2:, 1:-1] - 2 * c + up[..., :-2, 1:-1]
    uxy = 0.25 * (up[..., 2:, 2:] - up[..., 2:, :-2] - up[..., :-2, 2:] + up[..., :-2, :-2])
    return torch.cat([u, ux, uy, uxx, uyy, uxy], dim=1)


class PseudoPhysics(torch.nn.Module):
    """``phi``: derivative features -> (normalised) input channels on the same grid."""

    def __init__(self, c_out: int, c_in: int, hidden: int, periodic: bool) -> None:
        super().__init__()
        self.periodic = periodic
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(6 * c_out, hidden, 3, padding=1, padding_mode="circular" if periodic else "replicate"),
            torch.nn.GELU(), torch.nn.Conv2d(hidden, hidden, 1), torch.nn.GELU(), torch.nn.Conv2d(hidden, c_in, 1),
        )
        self.register_buffer("feat_scale", torch.ones(1, 6 * c_out, 1, 1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(derivative_features(u, self.periodic) / self.feat_scale)


class PPINO(FourierOperator):
    name = "ppino"
    summary = "FNO alternating with a learned pseudo-PDE on unlabelled inputs (Chen et al.)"

    n_rounds: int = 2
    pseudo_weight: float = 0.5
    phi_hidden: int = 64
    phi_epochs: int = 10

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Phase 1 (the `fno` recipe on data); phase 2 trains with its own closure in `fit`."""
        return {"data": self.data_loss(self.model(x), ys)}

    def fit(self, train_data: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> PPINO:
        super().fit(train_data, spec, budget.share(0.5), ctx)  # phase 1: the fno recipe on data
        self.logs = {"fno_warmup": self.train_log.to_dict()}
        k0 = min(train_data.targets)
        X = self.encode(self._tensor(train_data.inputs))
        Ys = {k: self._tensor(v) for k, v in train_data.targets.items()}
        Xk0 = restrict(X, k0)
        Yn = (Ys[k0] - self._y_mean) / self._y_std
        periodic = spec.boundary == "periodic"
        self.phi = to_context(PseudoPhysics(spec.out_channels, spec.in_channels, self.phi_hidden, periodic), ctx)
        with torch.no_grad():
            scale = derivative_features(Yn, periodic).std(dim=(0, 2, 3)).clamp_min(1e-8)
            self.phi.feat_scale.copy_(scale.view(1, -1, 1, 1))
        group = make_group(spec.symmetry) if spec.symmetry in GROUP_NAMES else None
        gen = torch.Generator().manual_seed(ctx.seed + 1)
        n = len(train_data)
        per_round = budget.share(0.5 / self.n_rounds)
        # phi's own fit: a fixed number of epochs, a tenth of the round's time cap
        phi_budget = replace(budget, mode="epochs", epochs=self.phi_epochs, max_train_s=0.1 * per_round.max_train_s)

        def phi_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            loss = rel_l2_loss(self.phi(Yn[idx]), Xk0[idx])
            return loss, {"phi": float(loss.detach())}

        aug = Augmenter.maybe(self.augment, spec, tuple(Ys), ctx.seed + 2)  # phase 2's own stream

        def fno_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
            x, ys = self.training_batch(aug, X, Ys, idx)
            out = self.model(x)
            data = self.data_loss(out, ys)
            xu, ou = x, out
            if group is not None:  # an unlabelled input: a training input moved by the group
                g = int(torch.randint(group.order, (1,), generator=gen))
                xu = transform(x, group, g, tuple(spec.in_parity) or (1,) * spec.in_channels)
                ou = self.model(xu)
            pseudo = rel_l2_loss(self.phi(restrict(ou, k0)), restrict(xu, k0))
            total = data + self.pseudo_weight * pseudo
            return total, {"data": float(data.detach()), "pseudo": float(pseudo.detach())}

        val_fn = None if self._val is None else (lambda: self.selection_error(*self._val))
        for r in range(self.n_rounds):
            self.phi.train().requires_grad_(True)
            self.logs[f"phi_{r}"] = train(self.phi, phi_loss, n, budget=phi_budget, ctx=ctx, lr=self.lr,
                                          weight_decay=self.weight_decay, schedule=self.schedule,
                                          checkpoint=self.checkpoint_path(ctx, f"phi{r}"),
                                          desc=f"train {self.name} phi", amp=self.amp).to_dict()
            self.phi.eval().requires_grad_(False)
            self.model.train()
            log = train(self.model, fno_loss, n, budget=per_round, ctx=ctx, lr=self.lr,
                        weight_decay=self.weight_decay, schedule=self.schedule, val_fn=val_fn,
                        checkpoint=self.checkpoint_path(ctx, f"round{r}"), desc=f"train {self.name}", amp=self.amp,
                        generators=[gen] if aug is None else [gen, aug.generator])
            self.logs[f"fno_{r}"] = log.to_dict()
            self.member_logs.append(log)
            self.model.eval()
        return self

    def diagnostics(self) -> dict:
        return {**super().diagnostics(), "phases": self.logs}


__all__ = ["PPINO", "PseudoPhysics", "derivative_features"]
