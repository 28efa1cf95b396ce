"""Losses: values on hand-made cases and gradients that point the right way."""

from __future__ import annotations

import pytest
import torch

from qfeat.trainers.losses import combined, l1_loss, mse_loss, plcc_loss, rank_loss


def test_plcc_loss():
    mos = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert plcc_loss(2 * mos + 7, mos).item() == pytest.approx(0.0, abs=1e-6)
    assert plcc_loss(-mos, mos).item() == pytest.approx(2.0, abs=1e-6)


def test_rank_loss_counts_misordered_pairs():
    mos = torch.tensor([1.0, 2.0, 3.0])
    assert rank_loss(torch.tensor([0.0, 1.0, 2.0]), mos).item() == 0.0
    # one swapped pair (by 1.0) out of 6 ordered pairs with different MOS
    assert rank_loss(torch.tensor([1.0, 0.0, 2.0]), mos).item() == pytest.approx(2 * 1.0 / 6)
    ties = torch.tensor([2.0, 2.0])
    assert rank_loss(torch.tensor([0.0, 1.0]), ties).item() == 0.0


def test_l1_mse():
    p, m = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 1.0])
    assert l1_loss(p, m).item() == pytest.approx(1.5)
    assert mse_loss(p, m).item() == pytest.approx(2.5)


def test_combined_gradient_improves_correlation():
    torch.manual_seed(0)
    mos = torch.rand(32)
    pred = torch.rand(32, requires_grad=True)
    loss_fn = combined({"plcc": 1.0, "rank": 0.3})
    before = loss_fn(pred, mos).item()
    opt = torch.optim.SGD([pred], lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        loss_fn(pred, mos).backward()
        opt.step()
    assert loss_fn(pred, mos).item() < before * 0.5
    with pytest.raises(ValueError, match="unknown loss"):
        combined({"huber": 1.0})
