"""Homoscedastic-uncertainty multitask loss (Kendall, Gal and Cipolla, CVPR 2018).

With ``s_k = log sigma_k^2`` learnable, ``loss = sum_k mse_k * exp(-s_k) + s_k``, i.e.
``sum_k L_k / sigma_k^2 + log prod_k sigma_k^2``. For fixed ``mse_k`` the minimum is at
``s_k = log mse_k``: each task is weighted by the inverse of its own current error, so no
hand-tuned weights are needed for five dimensions of different difficulty. (Kendall's
regression form has a factor 1/2 on the first term; dropping it only rescales sigma.)
"""

from __future__ import annotations

import torch
from torch import nn


class UncertaintyLoss(nn.Module):
    """``forward(pred [B, K], target [B, K], mask [B, K] bool | None) -> (loss, mse [K])``.

    ``mask`` marks present labels (False = missing, e.g. NaN in a corpus without LOUD);
    masked entries carry no gradient even if the target is NaN. A task with no label in the
    batch is left out of the loss (its ``s_k`` term too, or it would drift to -inf) and its
    reported MSE is 0.
    """

    def __init__(self, n_tasks: int = 5) -> None:
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n_tasks))

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is None:
            mask = torch.ones_like(target, dtype=torch.bool)
        mask = mask & torch.isfinite(target)
        safe_target = torch.where(mask, target, pred.detach())
        sq = torch.where(mask, (pred - safe_target) ** 2, torch.zeros_like(pred))
        counts = mask.sum(dim=0)  # [K]
        mse = sq.sum(dim=0) / counts.clamp(min=1).to(pred.dtype)  # [K]
        present = (counts > 0).to(pred.dtype)
        loss = (present * (mse * torch.exp(-self.log_vars) + self.log_vars)).sum()
        return loss, mse.detach()

    def sigmas(self) -> torch.Tensor:
        """Current sigma_k ``[K]`` (sqrt of exp(s_k))."""
        return torch.exp(0.5 * self.log_vars.detach())
