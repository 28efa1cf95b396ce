"""The ridge probe (`qfeat train probe`): its closed-form leave-one-out selection, its
pooling, and the trainer contract it proves (no gradient descent)."""

from __future__ import annotations

import numpy as np
import pytest

from qfeat.errors import OptionError
from qfeat.trainers.probe import alpha_grid, apply_state, pool, probe_fit, ridge_path
from qfeat.trainers.probe_settings import ProbeSettings
from qfeat.trainers.splits import make_splits


def _ridge(z, y, alpha):
    """Ridge with an unpenalised intercept, by the normal equations."""
    zc, yc = z - z.mean(0), y - y.mean()
    w = np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]), zc.T @ yc)
    return w, y.mean() - z.mean(0) @ w


def test_the_svd_path_equals_the_normal_equations_and_brute_force_leave_one_out():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 8))
    y = z @ rng.normal(size=8) + rng.normal(size=30)
    alphas = np.array([1e-3, 0.5, 10.0, 1e4])
    weights, intercepts, loo = ridge_path(z, y, alphas)
    for k, alpha in enumerate(alphas):
        w, b = _ridge(z, y, alpha)
        np.testing.assert_allclose(weights[k], w, rtol=1e-8, atol=1e-10)
        assert intercepts[k] == pytest.approx(b, rel=1e-8)
        errors = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            wi, bi = _ridge(z[keep], y[keep], alpha)
            errors.append((y[i] - (z[i] @ wi + bi)) ** 2)
        assert loo[k] == pytest.approx(np.mean(errors), rel=1e-8)


def test_more_features_than_items_still_fits_exactly():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(10, 40)), rng.normal(size=10)
    weights, intercepts, loo = ridge_path(z, y, np.array([0.1]))
    w, b = _ridge(z, y, 0.1)
    np.testing.assert_allclose(weights[0], w, rtol=1e-7, atol=1e-9)
    assert np.isfinite(loo).all()


def test_pooling_is_the_mean_and_std_over_positions_or_frames():
    maps = np.arange(2 * 3 * 2 * 2, dtype=np.float16).reshape(2, 3, 2, 2)
    pooled = pool(maps, "image")
    assert pooled.shape == (2, 6)
    np.testing.assert_allclose(pooled[0, :3], maps[0].astype(float).mean(axis=(1, 2)))
    np.testing.assert_allclose(pooled[0, 3:], maps[0].astype(float).std(axis=(1, 2)))
    frames = np.random.default_rng(2).normal(size=(4, 8, 5))
    np.testing.assert_allclose(pool(frames, "video")[:, 5:], frames.std(axis=1))


def _split_data(n=150, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    mos = x[:, 0] * 2 - x[:, 1] + 0.1 * rng.normal(size=n)
    data = pd.DataFrame({
        "item_id": [f"i{k}" for k in range(n)], "mos": mos, "split": None, "group": None
    })  # fmt: skip
    return data, x, mos


@pytest.mark.parametrize("selection", ["loo", "val"])
def test_a_split_fit_predicts_held_out_items_and_saves_what_scores_them(selection):
    data, x, mos = _split_data()
    split = make_splits(data, n_splits=1, seed=0)[0]
    settings = ProbeSettings(selection=selection).as_dict()
    seen = []
    fitted = probe_fit(x, mos, settings)(split, 0, seen.append)
    assert len(seen) == 1 and seen[0]["epoch"] == 1 and seen[0]["val_srcc"] > 0.8
    assert seen[0]["alpha"] in alpha_grid(settings)
    test = split.test["test"]
    pred = fitted.score(test)
    assert np.corrcoef(pred, mos[test])[0, 1] > 0.95
    np.testing.assert_allclose(apply_state(fitted.state, x[test]), pred)
    assert fitted.params == x.shape[1] + 1
    assert fitted.state["weight"].dtype.is_floating_point


def test_loo_picks_a_large_penalty_for_pure_noise():
    """Targets unrelated to the features: leave-one-out prefers shrinking to the mean."""
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(40, 20)), rng.normal(size=40)
    alphas = alpha_grid(ProbeSettings().as_dict())
    _, _, loo = ridge_path(z, y, alphas)
    assert np.argmin(loo) > len(alphas) // 2


def test_settings_are_validated():
    with pytest.raises(OptionError, match="probe.selection"):
        ProbeSettings.build({"selection": "cv"})
    with pytest.raises(OptionError, match="probe.alpha_max"):
        ProbeSettings.build({"alpha_min": 10.0, "alpha_max": 1.0})
