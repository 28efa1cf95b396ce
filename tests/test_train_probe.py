"""`qfeat train probe` through every command rsa and scma work with: train (images and
videos), `--run` resume, `evaluate`, `predict` on new files, `report`, `runs`, `table`
with significance against an rsa run. The probe is the trainer contract's proof that
nothing assumes gradient descent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from qfeat.cli.main import app
from qfeat.trainers.probe import pool
from qfeat.trainers.runfolder import RunFolder


def qfeat(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def train_probe(cache: Path, runs: Path, dataset: str, name: str, *extra):
    result = qfeat("train", "probe", dataset, "--cache-dir", cache, "--runs-dir", runs,
                   "--run", name, "--splits", 2, *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return runs / name, result.output


@pytest.fixture(scope="module")
def images(demo_images, rsa_run, tmp_path_factory) -> SimpleNamespace:
    runs = tmp_path_factory.mktemp("probe-runs")
    run, output = train_probe(demo_images.cache, runs, "demo", "probe")
    return SimpleNamespace(cache=demo_images.cache, data=demo_images.data, runs=runs,
                           run=run, output=output, rsa=rsa_run)  # fmt: skip


def test_trains_on_the_same_splits_as_rsa_and_records_what_it_fitted(images):
    assert "probe (ridge on backbone mean+std, loo) on demo: 2 test results" in images.output
    config = json.loads((images.run / "config.json").read_text())
    assert config["trainer"] == "probe" and config["modality"] == "image"
    assert config["probe"]["selection"] == "loo" and "epochs" not in config["probe"]
    assert config["stages"]["backbone"]["fingerprint"] == config["cache"]["backbone"]
    metrics = json.loads((images.run / "metrics.json").read_text())
    rsa_preds = pd.read_csv(images.rsa / "predictions.csv")
    preds = pd.read_csv(images.run / "predictions.csv")
    for split in ("test@0", "test@1"):  # the same items in every test split
        assert set(preds[preds.split == split].item_id) == set(
            rsa_preds[rsa_preds.split == split].item_id
        )
    run = RunFolder(images.run)
    for index, state in enumerate(run.states()):
        assert set(state) == {"weight", "intercept", "mean", "scale", "alpha"}
        width = state["weight"].numel()
        assert metrics["trainable_params"] == width + 1
        history = pd.read_csv(images.run / "history.csv")
        assert history[history.split == index]["epoch"].tolist() == [1]
    assert metrics["test"]["srcc"] is not None
    assert (images.run / "scatter.png").stat().st_size > 0


def test_cached_predictions_are_the_saved_ridge_on_pooled_features(images):
    """predictions.csv = the split's state applied to the pooled backbone map: what
    evaluate and predict use is what training tested."""
    from qfeat.cache.reader import open_stage
    from qfeat.trainers.probe import apply_state

    stage = open_stage(images.cache, "demo", "backbone")
    table = stage.table(["item_id", "status"])
    x = pool(stage.array("features"), "image")
    preds = pd.read_csv(images.run / "predictions.csv")
    rows = preds[preds.split == "test@1"]
    index = {item: i for i, item in enumerate(table["item_id"])}
    state = RunFolder(images.run).split_state(1)
    ours = apply_state(state, x[[index[i] for i in rows.item_id]])
    np.testing.assert_allclose(ours, rows["pred"].to_numpy(), rtol=1e-9)


def test_the_same_command_resumes_and_gives_the_same_numbers(images, tmp_path):
    run = Path(shutil.copytree(images.run, tmp_path / "probe"))
    (run / "split-01.json").unlink()  # as if killed during split 1
    (run / "metrics.json").unlink()
    again, output = train_probe(images.cache, tmp_path, "demo", "probe")
    assert "1 of 2 splits already finished" in output
    before = json.loads((images.run / "metrics.json").read_text())
    after = json.loads((again / "metrics.json").read_text())
    assert after["splits"] == before["splits"]


def test_evaluate_predict_report_runs_and_table(images, tmp_path):
    run = Path(shutil.copytree(images.run, tmp_path / "probe"))
    evaluated = qfeat("evaluate", run, "demo", "--cache-dir", images.cache, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    out = json.loads(evaluated.output)
    assert len(out["splits"]) == 2 and out["items"] > 0
    # predict: a cached item live gets the raw score training wrote
    preds = pd.read_csv(run / "predictions.csv")
    item = preds[preds.split == "test@0"].iloc[0]
    path = images.data / item["item_id"]
    from qfeat.trainers.predict import load_run

    statuses, raw = load_run(run, device="cpu").raw([path])
    assert statuses == [("ok", None)]
    assert raw[0, 0] == pytest.approx(item["pred"], rel=1e-4, abs=1e-5)
    predicted = qfeat("predict", run, path, "--device", "cpu", "--json")
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout)[0]["status"] == "ok"
    reported = qfeat("report", run, "--out", tmp_path / "probe.html")
    assert reported.exit_code == 0, reported.output
    page = (tmp_path / "probe.html").read_text()
    assert "penalty grid" in page and "pooled from backbone" in page
    listed = qfeat("runs", "--runs-dir", tmp_path, "--json")
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["trainer"] == "probe"
    table = qfeat("table", images.rsa, run, "--format", "json")
    assert table.exit_code == 0, table.output
    rows = json.loads(table.stdout)
    assert [r["trainer"] for r in rows] == ["rsa", "probe"]
    assert rows[1]["paired_with"] == "rsa"  # same dataset, seed and test items: paired


def test_videos_pool_clip_frame_embeddings(demo_videos, scma_run, tmp_path):
    run, output = train_probe(demo_videos.cache, tmp_path, "demo-video", "pv")
    assert "ridge on clip mean+std" in output
    config = json.loads((run / "config.json").read_text())
    assert config["modality"] == "video" and set(config["stages"]) == {"frames", "clip"}
    scma_preds = pd.read_csv(scma_run / "predictions.csv")
    preds = pd.read_csv(run / "predictions.csv")
    assert set(preds.item_id) == set(scma_preds.item_id)
    item = preds[preds.split == "test@0"].iloc[0]
    from qfeat.trainers.predict import load_run

    model = load_run(run, device="cpu")
    assert model.modality == "video"
    statuses, raw = model.raw([demo_videos.data / item["item_id"]])
    assert statuses == [("ok", None)]
    assert raw[0, 0] == pytest.approx(item["pred"], rel=1e-4, abs=1e-5)
