"""Training losses on a batch of predictions and MOS (1-D tensors), combinable by weight.

``plcc``: 1 - Pearson correlation (scale- and shift-free). ``rank``: mean pairwise hinge
on the order of every pair whose MOS differs. ``l1`` / ``mse``: on the (normalised) MOS.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-8


def plcc_loss(pred: Tensor, mos: Tensor) -> Tensor:
    p = pred - pred.mean()
    m = mos - mos.mean()
    corr = (p * m).sum() / (p.norm() * m.norm() + EPS)
    return 1.0 - corr


def rank_loss(pred: Tensor, mos: Tensor, margin: float = 0.0) -> Tensor:
    """Mean over pairs (i, j) with mos_i != mos_j of relu(margin - sign * (p_i - p_j))."""
    dp = pred[:, None] - pred[None, :]
    dm = mos[:, None] - mos[None, :]
    sign = torch.sign(dm)
    mask = sign != 0
    if not mask.any():
        return pred.sum() * 0.0
    return torch.relu(margin - sign * dp)[mask].mean()


def l1_loss(pred: Tensor, mos: Tensor) -> Tensor:
    return (pred - mos).abs().mean()


def mse_loss(pred: Tensor, mos: Tensor) -> Tensor:
    return ((pred - mos) ** 2).mean()


LOSSES = {"plcc": plcc_loss, "rank": rank_loss, "l1": l1_loss, "mse": mse_loss}


def combined(weights: dict[str, float]):
    """A loss function summing ``weight * loss`` (e.g. ``{"plcc": 1.0, "rank": 0.3}``)."""
    unknown = sorted(set(weights) - set(LOSSES))
    if unknown:
        raise ValueError(f"unknown loss(es) {', '.join(unknown)}; known: {', '.join(LOSSES)}")

    def loss(pred: Tensor, mos: Tensor) -> Tensor:
        return sum(w * LOSSES[name](pred, mos) for name, w in weights.items() if w)

    return loss
