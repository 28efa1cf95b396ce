"""Training losses on a batch of predictions and MOS (1-D tensors), combinable by weight.

Two forms of the PLCC + ranking pair (the ``loss`` trainer setting chooses):

- ``qclip`` (the Q-CLIP release's, from FAST-VQA): ``plcc_qclip`` standardises
  predictions and MOS (population std, +1e-8) and averages ``mse(p, m) / 4`` and
  ``mse(rho * p, m) / 4`` with ``rho = mean(p * m)``; ``rank_qclip`` sums
  ``relu((p_i - p_j) * sign(m_j - m_i))`` over all ordered pairs and divides by
  ``n (n - 1)`` and by ``1 + `` its largest term.
- ``simple``: ``plcc`` = 1 - Pearson correlation; ``rank`` = mean pairwise hinge over the
  pairs whose MOS differs.

``l1`` / ``mse``: on the (normalised) MOS.
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


def _standardise(x: Tensor) -> Tensor:
    std, mean = torch.std_mean(x, unbiased=False)
    return (x - mean) / (std + EPS)


def qclip_plcc_loss(pred: Tensor, mos: Tensor) -> Tensor:
    p, m = _standardise(pred), _standardise(mos)
    rho = (p * m).mean()
    return (((p - m) ** 2).mean() / 4 + ((rho * p - m) ** 2).mean() / 4) / 2


def qclip_rank_loss(pred: Tensor, mos: Tensor) -> Tensor:
    n = pred.shape[0]
    if n < 2:
        return pred.sum() * 0.0
    terms = torch.relu((pred[:, None] - pred[None, :]) * torch.sign(mos[None, :] - mos[:, None]))
    return terms.sum() / n / (n - 1) / (1 + terms.max())


def l1_loss(pred: Tensor, mos: Tensor) -> Tensor:
    return (pred - mos).abs().mean()


def mse_loss(pred: Tensor, mos: Tensor) -> Tensor:
    return ((pred - mos) ** 2).mean()


LOSSES = {
    "plcc": plcc_loss,
    "rank": rank_loss,
    "plcc_qclip": qclip_plcc_loss,
    "rank_qclip": qclip_rank_loss,
    "l1": l1_loss,
    "mse": mse_loss,
}
FORMS = ("qclip", "simple")  # the `loss` trainer setting


def training_loss(form: str, rank_weight: float):
    """PLCC loss + ``rank_weight`` x ranking loss in ``form`` (see the module doc)."""
    if form not in FORMS:
        raise ValueError(f"unknown loss form {form!r}; known: {', '.join(FORMS)}")
    suffix = "_qclip" if form == "qclip" else ""
    return combined({f"plcc{suffix}": 1.0, f"rank{suffix}": rank_weight})


def combined(weights: dict[str, float]):
    """A loss function summing ``weight * loss`` (e.g. ``{"plcc": 1.0, "rank": 0.3}``)."""
    unknown = sorted(set(weights) - set(LOSSES))
    if unknown:
        raise ValueError(f"unknown loss(es) {', '.join(unknown)}; known: {', '.join(LOSSES)}")

    def loss(pred: Tensor, mos: Tensor) -> Tensor:
        return sum(w * LOSSES[name](pred, mos) for name, w in weights.items() if w)

    return loss
