"""The RSA head (Region-aware Semantic Attention, RSFIQA), our reconstruction.

Inputs per image (all from the cache, see :mod:`qfeat.trainers.rsa_data`):

- ``features`` ``[B, C, h, w]``: a frozen backbone map (any backbone);
- ``masks`` ``[B, R, h, w]``: region masks on the map's grid as area fractions (R = K+1,
  the partition of the regions stage, so they sum to 1 per cell), ``valid`` ``[B, R]``;
- ``text`` ``[B, R, D]`` embeddings of each region's description and ratings,
  ``text_valid`` ``[B, R]``;
- ``ratings`` ``[B, R, 5]`` level of colour, noise, artifact, blur, overall (1..5; 0 =
  unknown).

Steps (docs/method.md, "RSA"):

1. region visual descriptor ``v_j``: masked mean and standard deviation of the map over
   region j (quality lives in texture statistics, hence the std), projected to ``hidden``;
2. region semantic token ``s_j``: MLP over [text embedding ; embedding of the ratings];
3. region weight ``a_j`` from ``[v_j ; s_j]``; attention map ``A(p) = sum_j M_j(p) sigmoid(a_j)``;
4. ``score = MLP(attention-pooled mean/std of F  (+)  sum_j w_j s_j)``, ``w_j`` the
   normalised sigmoid weights.

Ablations (``attention``): ``rsa`` (learned a_j), ``uniform`` (a_j = 0: every region the
same weight, pooling = global pooling, semantic tokens averaged), ``global`` (map pooled
globally, no regions or text at all); ``use_text`` / ``use_ratings`` drop a source of
``s_j`` (both off: no semantic token; weights from ``v_j`` alone).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from qfeat.pipeline import levels

ATTENTION = ("rsa", "uniform", "global")
DIMENSIONS = len(levels.DIMENSIONS)
LEVELS = len(levels.LEVELS) + 1  # 0 = unknown, 1..5 = bad..excellent
EPS = 1e-6


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.GELU(), nn.Linear(hidden, out))


def region_moments(features: Tensor, masks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-region statistics of the map, all the head ever needs of it.

    ``features`` ``[B, C, h, w]``, ``masks`` ``[B, R, h, w]`` (area fractions on the grid)
    -> ``(mean [B, R, C], square [B, R, C], area [B, R])``: masked first and second
    moments and the region's share of the grid. Because the attention map is a weighted
    sum of region masks, attention pooling is exactly a weighted combination of these,
    so the trainer computes them once per item instead of once per step.
    """
    values, m = features.flatten(2), masks.flatten(2)
    area = m.sum(-1)
    total = area.clamp_min(EPS).unsqueeze(-1)
    mean = torch.einsum("brp,bcp->brc", m, values) / total
    square = torch.einsum("brp,bcp->brc", m, values * values) / total
    return mean, square, area / values.shape[-1]


def _mean_std(weights: Tensor, mean: Tensor, square: Tensor) -> Tensor:
    """``[B, 2C]``: mean and std of the mixture of regions weighted by ``weights`` ``[B, R]``."""
    w = (weights / weights.sum(-1, keepdim=True).clamp_min(EPS)).unsqueeze(-1)
    mu, sq = (w * mean).sum(1), (w * square).sum(1)
    return torch.cat([mu, (sq - mu * mu).clamp_min(0.0).add(EPS).sqrt()], dim=-1)


class RSABatch(NamedTuple):
    """The head's inputs for ``B`` items (``R`` region slots, ``C`` channels, text dim
    ``D``): ``mean``/``square`` ``[B, R, C]`` and ``area`` ``[B, R]`` from
    :func:`region_moments`, ``valid`` ``[B, R]``, ``text`` ``[B, R, D]``, ``text_valid``
    ``[B, R]``, ``ratings`` ``[B, R, 5]`` (level ids, 0 = unknown)."""

    mean: Tensor
    square: Tensor
    area: Tensor
    valid: Tensor
    text: Tensor
    text_valid: Tensor
    ratings: Tensor


class RSAHead(nn.Module):
    def __init__(
        self,
        channels: int,
        text_dim: int,
        *,
        hidden: int = 128,
        attention: str = "rsa",
        use_text: bool = True,
        use_ratings: bool = True,
        rating_dim: int = 8,
    ):
        super().__init__()
        if attention not in ATTENTION:
            raise ValueError(f"attention must be one of {', '.join(ATTENTION)}, not {attention!r}")
        self.attention = attention
        self.use_text = use_text and attention != "global"
        self.use_ratings = use_ratings and attention != "global"
        self.norm = nn.LayerNorm(2 * channels)  # backbone scales vary wildly; one norm
        self.pooled = nn.Sequential(nn.Linear(2 * channels, hidden), nn.GELU())
        semantic_in = 0
        if self.use_text:
            self.text_proj = nn.Linear(text_dim, hidden)
            semantic_in += hidden
        if self.use_ratings:
            self.rating_emb = nn.Embedding(DIMENSIONS * LEVELS, rating_dim)
            self.register_buffer("offsets", torch.arange(DIMENSIONS) * LEVELS, persistent=False)
            semantic_in += DIMENSIONS * rating_dim
        self.semantic = _mlp(semantic_in, hidden, hidden) if semantic_in else None
        if attention == "rsa":
            self.region = nn.Sequential(nn.Linear(2 * channels, hidden), nn.GELU())
            self.weight = _mlp(hidden * (2 if self.semantic else 1), hidden, 1)
        self.head = _mlp(hidden * (2 if self.semantic else 1), hidden, 1)

    def semantic_tokens(self, text: Tensor, text_valid: Tensor, ratings: Tensor) -> Tensor:
        """``s_j`` ``[B, R, hidden]``."""
        parts = []
        if self.use_text:
            parts.append(self.text_proj(F.normalize(text, dim=-1)) * text_valid.unsqueeze(-1))
        if self.use_ratings:
            levels = ratings.long().clamp(0, LEVELS - 1) + self.offsets
            parts.append(self.rating_emb(levels).flatten(-2))
        return self.semantic(torch.cat(parts, dim=-1))

    def region_weights(self, mean, square, valid, semantic) -> Tensor:
        """``sigmoid(a_j)`` ``[B, R]``, zero for regions that do not exist."""
        if self.attention == "uniform":
            logits = torch.zeros(valid.shape, device=valid.device)
        else:
            std = (square - mean * mean).clamp_min(0.0).add(EPS).sqrt()
            v = self.region(self.norm(torch.cat([mean, std], dim=-1)))
            x = torch.cat([v, semantic], dim=-1) if semantic is not None else v
            logits = self.weight(x).squeeze(-1)
        return torch.sigmoid(logits) * valid

    def forward(self, batch: RSABatch, return_weights: bool = False):
        """Scores ``[B]`` (and the region weights ``[B, R]`` when asked).

        ``batch.mean``, ``.square``, ``.area`` come from :func:`region_moments`; for
        ``global`` attention they are the moments of one region covering the whole map.
        """
        mean, square, area, valid, text, text_valid, ratings = batch
        if self.attention == "global":
            weights, semantic = area.new_ones(area.shape[0], 1), None
            pooled = _mean_std(weights, mean[:, :1], square[:, :1])
        else:
            semantic = self.semantic_tokens(text, text_valid, ratings) if self.semantic else None
            weights = self.region_weights(mean, square, valid, semantic)
            # attention-pooling the map with A(p) = sum_j M_j(p) w_j weighs region j by
            # w_j times its area
            pooled = _mean_std(weights * area * valid, mean, square)
        x = self.pooled(self.norm(pooled))
        if semantic is not None:
            w = weights / weights.sum(-1, keepdim=True).clamp_min(EPS)
            x = torch.cat([x, torch.einsum("br,brh->bh", w, semantic)], dim=-1)
        score = self.head(x).squeeze(-1)
        return (score, weights) if return_weights else score
