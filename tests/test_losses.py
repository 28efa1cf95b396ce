"""Losses: values on hand-made cases and gradients that point the right way."""

from __future__ import annotations

import numpy as np
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


def test_qclip_losses_follow_the_released_formulas():
    """Issue 16.2: the Q-CLIP release's PLCC loss (FAST-VQA's, on standardised values)
    and its normalised ranking loss, checked against the formulas in numpy."""
    from qfeat.trainers.losses import qclip_plcc_loss, qclip_rank_loss, training_loss

    rng = np.random.default_rng(0)
    p, m = rng.normal(size=12), rng.uniform(1, 5, size=12)
    ps, ms = (p - p.mean()) / (p.std() + 1e-8), (m - m.mean()) / (m.std() + 1e-8)
    rho = np.mean(ps * ms)
    plcc = (np.mean((ps - ms) ** 2) / 4 + np.mean((rho * ps - ms) ** 2) / 4) / 2
    terms = np.maximum(0, (p[:, None] - p[None, :]) * np.sign(m[None, :] - m[:, None]))
    rank = terms.sum() / 12 / 11 / (1 + terms.max())
    tp, tm = torch.tensor(p), torch.tensor(m)
    assert qclip_plcc_loss(tp, tm).item() == pytest.approx(plcc, rel=1e-9)
    assert qclip_rank_loss(tp, tm).item() == pytest.approx(rank, rel=1e-9)
    both = training_loss("qclip", 0.3)(tp, tm).item()
    assert both == pytest.approx(plcc + 0.3 * rank, rel=1e-9)
    assert training_loss("simple", 0.3)(tp, tm).item() != pytest.approx(both)
    assert qclip_rank_loss(tp[:1], tm[:1]).item() == 0.0
    with pytest.raises(ValueError, match="unknown loss form"):
        training_loss("fancy", 0.3)


def test_loss_setting_defaults_and_validation():
    from qfeat.errors import OptionError
    from qfeat.trainers.settings import RSASettings, SCMASettings, trainer_settings

    assert trainer_settings(SCMASettings, "paper", None)["loss"] == "qclip"
    assert trainer_settings(RSASettings, "paper", None)["loss"] == "simple"
    assert trainer_settings(SCMASettings, "tiny", ["scma.loss=simple"])["loss"] == "simple"
    with pytest.raises(OptionError, match="scma.loss"):
        trainer_settings(SCMASettings, "tiny", ["scma.loss=fancy"])
