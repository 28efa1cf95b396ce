"""The RSA head: pooling from region moments equals attention pooling of the full map,
ablation switches change what the head can see, region masks on the backbone grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qfeat.trainers.rsa import RSABatch, RSAHead, region_moments
from qfeat.trainers.rsa_data import grid_masks, needed_stages, ratings_of

B, C, H, W, R, D = 3, 6, 4, 5, 4, 8


def partition_masks(seed: int = 0) -> torch.Tensor:
    """``[B, R, H, W]`` area fractions summing to 1 per cell (a soft partition)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(B, R, H, W, generator=g) ** 4
    m[:, -1] = 0.0  # one empty slot, as a missing region
    return m / m.sum(1, keepdim=True)


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(B, C, H, W, generator=g)
    masks = partition_masks(seed)
    valid = (masks.flatten(2).sum(-1) > 0).float()
    text = torch.randn(B, R, D, generator=g)
    ratings = torch.randint(0, 6, (B, R, 5), generator=g)
    return features, masks, valid, text, valid.clone(), ratings


def test_pooling_from_moments_is_attention_pooling_of_the_map():
    torch.manual_seed(0)
    features, masks, valid, text, text_valid, ratings = inputs()
    head = RSAHead(C, D, hidden=16).eval()
    mean, square, area = region_moments(features, masks)
    _, weights = head(
        RSABatch(mean, square, area, valid, text, text_valid, ratings), return_weights=True
    )
    # reference: A(p) = sum_j M_j(p) sigmoid(a_j), then mean/std of F under A
    a = torch.einsum("br,brhw->bhw", weights, masks).flatten(1)
    f = features.flatten(2)
    mu = (a[:, None] * f).sum(-1) / a.sum(-1, keepdim=True)
    var = (a[:, None] * (f - mu[..., None]) ** 2).sum(-1) / a.sum(-1, keepdim=True)
    want = torch.cat([mu, var.sqrt()], dim=-1)
    from qfeat.trainers.rsa import _mean_std

    got = _mean_std(weights * area * valid, mean, square)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert (weights[:, -1] == 0).all()  # the missing region has no weight


def test_global_and_uniform_ablations():
    torch.manual_seed(0)
    features, masks, valid, text, text_valid, ratings = inputs()
    ones = torch.ones(B, 1, H, W)
    gm, gs, ga = region_moments(features, ones)
    glob = RSAHead(C, D, hidden=16, attention="global").eval()
    score = glob(
        RSABatch(gm, gs, ga, torch.ones(B, 1), text[:, :1], text_valid[:, :1], ratings[:, :1])
    )
    assert score.shape == (B,)
    assert not hasattr(glob, "text_proj") and not hasattr(glob, "rating_emb")
    uni = RSAHead(C, D, hidden=16, attention="uniform").eval()
    mean, square, area = region_moments(features, masks)
    _, w = uni(RSABatch(mean, square, area, valid, text, text_valid, ratings), return_weights=True)
    torch.testing.assert_close(w, 0.5 * valid)
    # uniform weights on a partition pool exactly like global pooling
    from qfeat.trainers.rsa import _mean_std

    torch.testing.assert_close(
        _mean_std(w * area * valid, mean, square), _mean_std(torch.ones(B, 1), gm, gs)
    )


@pytest.mark.parametrize("use_text, use_ratings", [(True, True), (False, True), (True, False)])
def test_text_and_ratings_switches(use_text, use_ratings):
    torch.manual_seed(0)
    features, masks, valid, text, text_valid, ratings = inputs()
    head = RSAHead(C, D, hidden=16, use_text=use_text, use_ratings=use_ratings).eval()
    mean, square, area = region_moments(features, masks)
    base = head(RSABatch(mean, square, area, valid, text, text_valid, ratings))
    other_text = head(RSABatch(mean, square, area, valid, text + 1.0, text_valid, ratings))
    other_ratings = head(RSABatch(mean, square, area, valid, text, text_valid, (ratings + 1) % 6))
    assert torch.equal(base, other_text) != use_text
    assert torch.equal(base, other_ratings) != use_ratings


def test_needed_stages():
    assert needed_stages("global", True, True) == ["backbone"]
    assert needed_stages("rsa", True, True) == ["backbone", "regions", "describe", "text"]
    assert needed_stages("uniform", False, True) == ["backbone", "regions", "describe"]
    assert needed_stages("rsa", True, False) == ["backbone", "regions", "text"]


def test_grid_masks_are_area_fractions():
    from pycocotools import mask as mask_utils

    label = np.zeros((8, 12), np.uint8)
    label[:, 6:] = 1  # right half region 0, left half the rest (slot 3)
    rles = [
        mask_utils.encode(np.asfortranarray((label == v).astype(np.uint8)))["counts"].decode()
        for v in (1, 0)
    ]
    row = {"width": 12, "height": 8, "region_id": [0, 3], "rle": rles}
    grid = grid_masks(row, 4, (2, 4))
    assert grid.shape == (4, 2, 4)
    np.testing.assert_allclose(grid.sum(0), 1.0)
    np.testing.assert_allclose(grid[0], [[0, 0, 1, 1], [0, 0, 1, 1]])
    assert not grid[1].any() and not grid[2].any()


def test_ratings_unknown_is_zero():
    row = {"region_id": [0, 2]}
    for d, values in zip(
        ("colour", "noise", "artifact", "blur", "overall"),
        ([1, None], [5, 3], [7, 2], [float("nan"), 4], [2, 2]),
        strict=True,
    ):
        row[d] = values
    out = ratings_of(row, 3)
    assert out.tolist() == [[1, 5, 0, 0, 2], [0, 0, 0, 0, 0], [0, 3, 2, 4, 2]]
