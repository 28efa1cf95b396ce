"""Issue 40.4: metrics say what was computed: the logistic fallback is named on the
console and in metrics.json (`logistic_fit` in every split), and a decreasing mapping
is stated and keeps plcc's sign."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from qfeat.cli.train import metrics_table
from qfeat.trainers.metrics import evaluate
from qfeat.trainers.runfolder import split_metrics, summarise


def test_a_falling_line_on_three_items_keeps_plcc_negative_and_says_so():
    """As reported: SRCC -0.5, plcc_raw -0.990, plcc +0.990 with no word."""
    r = evaluate([0.1, 0.2, 0.9], [4.0, 4.5, 1.0])
    assert r["srcc"] == pytest.approx(-0.5) and r["plcc_raw"] < -0.9
    assert r["logistic_fit"] == "linear" and r["mapping"] == "decreasing"
    assert r["plcc"] == pytest.approx(r["plcc_raw"])  # the sign is the model's, not the map's
    assert "least-squares line" in r["note"] and "mapping decreases" in r["note"]


def test_a_falling_logistic_keeps_plcc_negative():
    pred = np.linspace(0, 1, 30)
    r = evaluate(pred, 5 - 4 / (1 + np.exp(-(pred - 0.5) * 8)))
    assert r["logistic_fit"] == "decreasing" and r["mapping"] == "decreasing"
    assert r["plcc"] < 0 and "negative sign" in r["note"]
    rising = evaluate(pred, 1 + 4 / (1 + np.exp(-(pred - 0.5) * 8)))
    assert rising["mapping"] == "increasing" and rising["plcc"] > 0.9 and rising["note"] is None


def test_every_split_record_names_its_fit_and_the_console_shows_the_fallback():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=40)
    ok, _ = split_metrics(0, "test", [f"i{k}" for k in range(40)], pred + 0.1, pred)
    small, _ = split_metrics(1, "test", ["a", "b", "c"], np.array([1.0, 2.0, 3.0]),
                             np.array([0.1, 0.5, 0.2]))  # fmt: skip
    assert ok["logistic_fit"] == "ok" and ok["mapping"] == "increasing"
    assert small["logistic_fit"] == "linear"
    metrics = {**summarise([ok, small]), "splits": [ok, small]}
    console = Console(width=200, record=True)
    console.print(metrics_table(metrics, "run"))
    shown = console.export_text()
    assert "split 1 (test): the 4-parameter logistic could not be fitted on 3 items" in shown
    assert "split 0" not in shown
