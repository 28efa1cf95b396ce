"""`qfeat train scma` on a tiny cache: run folder contract, metrics, checkpoints, --init."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from qfeat.trainers.metrics import evaluate


@pytest.fixture(scope="module")
def cache(demo_videos):
    """The session's demo video cache (read only: tests that change a cache copy it)."""
    return demo_videos.cache


def train(qfeat, cache, runs, *extra):
    return qfeat("train", "scma", "demo-video", "--cache-dir", str(cache), "--runs-dir", str(runs),
                 "--splits", "2", "--epochs", "2", *extra)  # fmt: skip


def test_run_folder_contract(qfeat, cache, tmp_path):
    result = train(qfeat, cache, tmp_path / "runs", "--run", "r1")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "r1"
    for name in ("metrics.json", "predictions.csv", "config.json", "scatter.png", "curves.png",
                 "split-00.safetensors", "split-01.safetensors"):  # fmt: skip
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("test", "median", "std"):
        assert set(metrics[key]) == {"srcc", "krcc", "plcc", "plcc_raw", "rmse"}
    assert len(metrics["splits"]) == 2 and metrics["trainable_params"] > 0
    assert metrics["train_seconds"] > 0
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(predictions.columns) == ["item_id", "split", "mos", "pred"]
    # metrics.json agrees with predictions.csv recomputed independently
    for record in metrics["splits"]:
        rows = predictions[predictions["split"] == f"test@{record['split']}"]
        again = evaluate(rows["pred"], rows["mos"])
        assert record["srcc"] == pytest.approx(again["srcc"])
        assert record["plcc"] == pytest.approx(again["plcc"], rel=1e-4)  # logistic fit
    assert metrics["test"]["srcc"] == pytest.approx(np.mean([r["srcc"] for r in metrics["splits"]]))
    config = json.loads((folder / "config.json").read_text())
    assert config["cache"]["clip"] and config["cache"]["frames"]
    # test items never overlap within a split's training data: every item appears once per split
    assert not predictions.duplicated(["item_id", "split"]).any()


def test_same_command_same_numbers(qfeat, cache, tmp_path):
    for run in ("a", "b"):
        assert train(qfeat, cache, tmp_path, "--run", run).exit_code == 0
    a, b = (pd.read_csv(tmp_path / r / "predictions.csv") for r in ("a", "b"))
    pd.testing.assert_frame_equal(a, b)


def test_checkpoint_round_trip_and_init(qfeat, cache, tmp_path):
    assert train(qfeat, cache, tmp_path, "--run", "base").exit_code == 0
    state = load_file(str(tmp_path / "base" / "split-00.safetensors"))
    assert "context" in state and all(t.dtype == torch.float32 for t in state.values())
    result = train(qfeat, cache, tmp_path, "--run", "tuned", "--init", "base")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "tuned" / "config.json").read_text())["init"] == "base"
    missing = train(qfeat, cache, tmp_path, "--run", "x", "--init", "nope")
    assert missing.exit_code == 1 and "no checkpoint" in missing.output


def test_projection_mode_reports_itself(qfeat, cache, tmp_path):
    result = train(qfeat, cache, tmp_path, "--run", "p", "--mode", "projection")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    full = json.loads((tmp_path / "p" / "config.json").read_text())
    assert metrics["mode"] == full["mode"] == "projection"


def test_missing_cache_names_the_command(qfeat, tmp_path):
    result = qfeat("train", "scma", "demo-video", "--cache-dir", str(tmp_path / "empty"))
    assert result.exit_code == 1 and "qfeat features demo-video" in result.output


def test_cache_from_other_weights_names_the_command(qfeat, cache, tmp_path):
    """A clip stage made by an older tiny architecture (or other weights) is refused with
    the command that recomputes it, not trained on with mismatched towers."""
    import shutil

    from qfeat.cache.reader import open_stage

    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    from qfeat.cache.fingerprint import fingerprint
    from qfeat.cache.integrity import seal

    folder = open_stage(copy, "demo-video", "clip").dir
    data = json.loads((folder / "manifest.json").read_text())
    data["model"]["arch"] = "0" * 12
    data["fingerprint"] = fingerprint(data)  # as that older qfeat wrote it: an intact folder
    (folder / "manifest.json").write_text(json.dumps(seal(data)))
    folder.rename(folder.with_name(data["fingerprint"]))
    result = qfeat("train", "scma", "demo-video", "--cache-dir", str(copy))
    assert result.exit_code == 1
    assert "qfeat features demo-video" in result.output and "0" * 12 in result.output


def test_evaluate_cross_dataset(qfeat, cache, tmp_path):
    assert train(qfeat, cache, tmp_path, "--run", "src").exit_code == 0
    result = qfeat(
        "evaluate", str(tmp_path / "src"), "demo-video", "--cache-dir", str(cache), "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["test"]) == {"srcc", "krcc", "plcc", "plcc_raw", "rmse"}
    assert len(report["splits"]) == 2 and report["items"] == 36
    assert (tmp_path / "src" / "eval-demo-video.json").is_file()
    assert isinstance(report["splits"][0]["srcc"], float)  # a real number was computed


def test_evaluate_refuses_a_different_clip_cache(qfeat, cache, tmp_path):
    """The one compatibility check (trainers/compat.py): another K, or another model
    identity under the same settings (other weights at the same path: the sha256; for
    the tiny tower, its seed), is refused naming both sides."""
    assert train(qfeat, cache, tmp_path, "--run", "src").exit_code == 0
    path = tmp_path / "src" / "config.json"
    original = json.loads(path.read_text())
    config = json.loads(path.read_text())
    config["stages"]["clip"]["config"]["adapted_blocks"] = 3
    path.write_text(json.dumps(config))
    result = qfeat("evaluate", str(tmp_path / "src"), "demo-video", "--cache-dir", str(cache))
    assert result.exit_code == 1 and "clip.adapted_blocks=2" in result.output
    assert "clip.adapted_blocks=3" in result.output
    config = json.loads(json.dumps(original))
    config["stages"]["clip"]["model"]["seed"] = 7
    path.write_text(json.dumps(config))
    result = qfeat("evaluate", str(tmp_path / "src"), "demo-video", "--cache-dir", str(cache))
    assert result.exit_code == 1 and "seed 7" in result.output
