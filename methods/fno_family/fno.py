"""`fno`: the Fourier Neural Operator of neuraloperator (Li et al. 2021), trained on the
relative L2 error of ``R_k`` of its fine output at every training factor."""

from __future__ import annotations

import torch

from methods.fno_family.base import FourierOperator


class FNO(FourierOperator):
    name = "fno"
    summary = "neuraloperator FNO on the fine grid, restricted by R_k"

    def loss_terms(self, x: torch.Tensor, ys: dict[int, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"data": self.data_loss(self.model(x), ys)}


__all__ = ["FNO"]
