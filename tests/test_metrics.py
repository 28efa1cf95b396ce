"""Metrics against scipy and hand-computed cases, and degenerate input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from qfeat.trainers.metrics import (
    evaluate,
    fit_logistic,
    fit_mapping,
    krcc,
    logistic4,
    plcc,
    srcc,
)


def test_hand_computed():
    pred = [1, 2, 3, 4]
    mos = [1, 3, 2, 4]
    assert srcc(pred, mos) == pytest.approx(1 - 6 * 2 / (4 * 15))  # d^2 = 0+1+1+0 -> 0.8
    assert krcc(pred, mos) == pytest.approx((5 - 1) / 6)  # 5 concordant, 1 discordant pair
    assert plcc(pred, mos) == pytest.approx(0.8)
    assert srcc([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_against_scipy_with_ties():
    rng = np.random.default_rng(0)
    mos = rng.integers(1, 6, 200).astype(float)  # many ties
    pred = mos + rng.normal(0, 1, 200)
    pred[:20] = 2.0  # ties in the predictions too
    r = evaluate(pred, mos)
    assert r["srcc"] == pytest.approx(stats.spearmanr(pred, mos)[0])
    assert r["krcc"] == pytest.approx(stats.kendalltau(pred, mos)[0])
    assert r["plcc_raw"] == pytest.approx(stats.pearsonr(pred, mos)[0])
    assert r["logistic_fit"] == "ok" and r["note"] is None


def test_logistic_mapping_recovers_a_monotone_nonlinearity():
    x = np.linspace(-3, 3, 300)
    mos = logistic4(x, 5.0, 1.0, 0.3, 0.35)
    r = evaluate(x, mos)
    assert r["plcc_raw"] < 0.97  # raw PLCC is hurt by the nonlinearity
    assert r["plcc"] == pytest.approx(1.0, abs=1e-6)
    assert r["rmse"] == pytest.approx(0.0, abs=1e-4)
    assert r["srcc"] == pytest.approx(1.0)
    params = fit_logistic(x, mos)
    np.testing.assert_allclose(logistic4(x, *params), mos, atol=1e-5)


@pytest.mark.parametrize(
    "pred, mos, note",
    [
        ([2.0] * 10, list(range(10)), "constant predictions"),
        (list(range(10)), [3.0] * 10, "constant MOS"),
        ([1.0, 2.0], [1.0, 2.0], "only 2 items"),
        ([1.0, np.nan, 2.0], [1.0, 2.0, 3.0], "non-finite"),
    ],
)
def test_degenerate_input_gives_nan_and_a_note(pred, mos, note):
    r = evaluate(pred, mos)
    assert note in r["note"]
    assert math.isnan(r["srcc"]) and math.isnan(r["plcc"])


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError):
        evaluate([1, 2, 3], [1, 2])


def test_three_items_fall_back_to_a_line_and_say_so():
    """A 3-item test split (datasets of ~13-17 usable items) used to crash the logistic
    fit with a TypeError; it is a straight-line map now, recorded as such."""
    r = evaluate([0.1, 0.5, 0.2], [1.0, 4.0, 2.5])
    assert r["logistic_fit"] == "linear" and "least-squares line" in r["note"]
    assert r["srcc"] == pytest.approx(1.0) and np.isfinite(r["plcc"]) and np.isfinite(r["rmse"])
    line = fit_mapping([0.1, 0.5, 0.2], [1.0, 4.0, 2.5])
    assert line.kind == "linear"


def _step_split():
    """A degenerate split built on purpose (issue 23.1): ~20 test items whose MOS jumps
    between two levels around one raw score, where an unbounded logistic fit becomes a step
    that puts most items on a plateau."""
    rng = np.random.default_rng(3)
    pred = np.sort(rng.normal(-0.33, 0.05, 20))
    mos = np.where(pred > -0.34, 4.2, 2.1) + rng.normal(0, 0.05, 20)
    return pred, mos


def test_the_unbounded_fit_really_degenerates_on_that_split():
    pred, mos = _step_split()
    b1, b2, b3, b4 = fit_logistic(pred, mos)
    assert abs(b4) < np.ptp(pred) / 50  # a step: the case the bounded mapping must avoid


def test_mapping_keeps_distinct_raw_scores_distinct_and_in_order():
    pred, mos = _step_split()
    mapping = fit_mapping(pred, mos, bounds=(1.0, 5.0))
    assert mapping.kind == "logistic" and abs(mapping.params[3]) >= np.ptp(pred) / 8
    raw = np.linspace(pred.min(), pred.max(), 200)
    mapped = mapping(raw)
    assert np.all(np.diff(mapped) > 1e-6)  # strictly increasing, no plateau
    assert len(np.unique(np.round(mapping(pred), 3))) == len(pred)  # shown to 3 decimals
    assert srcc(mapping(pred), mos) == pytest.approx(srcc(pred, mos))


def test_mapping_of_an_anti_correlated_split_still_rises():
    """A split where the model ranks against MOS: the map stays increasing (the model's
    order is kept) instead of a decreasing or flat curve."""
    pred = np.linspace(0, 1, 12)
    mos = 5 - 3 * pred + np.sin(7 * pred) * 0.1
    mapping = fit_mapping(pred, mos)
    assert mapping.kind == "linear" and mapping.params[0] > 0
    assert np.all(np.diff(mapping(pred)) > 0)
    assert mapping(pred).min() == pytest.approx(mos.min()) and mapping(pred).max() == (
        pytest.approx(mos.max())
    )


def test_a_decreasing_fit_says_so():
    """Issue 16: a model that ranks against MOS got a positive plcc from a falling
    logistic, silently."""
    pred = np.linspace(0, 1, 30)
    mos = 5 - 4 / (1 + np.exp(-(pred - 0.5) * 8))
    r = evaluate(pred, mos)
    assert r["srcc"] < 0 and r["plcc_raw"] < 0
    assert r["logistic_fit"] == "decreasing" and "ranks these items against" in r["note"]


def test_undefined_splits_are_counted_not_hidden():
    from qfeat.trainers.runfolder import summarise

    rows = [
        {"test_set": "test", "srcc": 0.5, "krcc": 0.4, "plcc": 0.6, "plcc_raw": 0.5, "rmse": 1.0},
        {"test_set": "test", "srcc": None, "krcc": None, "plcc": None, "plcc_raw": None,
         "rmse": 0.8},
        {"test_set": "test", "srcc": 0.7, "krcc": 0.5, "plcc": 0.8, "plcc_raw": 0.7, "rmse": 1.2},
    ]  # fmt: skip
    out = summarise(rows)
    assert out["valid_splits"] == 2 and out["n_splits"] == 3
    assert out["test"]["srcc"] == pytest.approx(0.6)


def test_train_table_and_report_name_the_valid_splits():
    from qfeat.cli.train import metrics_table
    from qfeat.trainers.report.sections import _splits_shown

    stats = {"srcc": 0.5, "krcc": 0.4, "plcc": 0.6, "plcc_raw": 0.5, "rmse": 1.0}
    metrics = {"test": stats, "median": stats, "std": stats, "valid_splits": 9, "n_splits": 10}
    assert "over 9 of 10 splits" in str(metrics_table(metrics, "run").title)
    assert "of" not in str(metrics_table({**metrics, "valid_splits": 10}, "run").title)
    metrics["splits"] = [{"split": i} for i in range(10)]
    assert _splits_shown(metrics) == "9 of 10 valid"
