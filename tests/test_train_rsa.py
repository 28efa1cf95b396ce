"""`qfeat train rsa` on a real (small) demo cache of all four image stages, and
`qfeat evaluate` of the run: run-folder contract, metrics that agree with
predictions.csv, checkpoint round trip, ablations, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from qfeat.cli.main import app


def qfeat(*args: str):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def cache(demo_images) -> Path:
    """The session's demo image cache (read only: tests that change a cache copy it)."""
    return demo_images.cache


def train(cache: Path, runs: Path, name: str, *extra: str):
    result = qfeat("train", "rsa", "demo", "--cache-dir", str(cache), "--runs-dir", str(runs),
                   "--run", name, "--splits", "2", "--epochs", "3", "--device", "cpu",
                   *extra)  # fmt: skip
    assert result.exit_code == 0, result.output
    return runs / name


@pytest.fixture(scope="module")
def run(rsa_run) -> Path:
    """The session's RSA run on that cache (as ``train`` makes it: 2 splits, 3 epochs)."""
    return rsa_run


def test_a_new_run_says_how_to_resume_it(cache, tmp_path):
    result = qfeat("train", "rsa", "demo", "--cache-dir", str(cache), "--runs-dir",
                   str(tmp_path), "--splits", "1", "--epochs", "1", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.iterdir()  # timestamped name
    assert f"the same command with --run {folder.name} resumes it" in result.output


def test_run_folder_contract(run):
    for name in ("metrics.json", "predictions.csv", "config.json", "scatter.png", "curves.png"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in run.glob("*.safetensors")) == [
        "split-00.safetensors",
        "split-01.safetensors",
    ]
    metrics = json.loads((run / "metrics.json").read_text())
    keys = {"srcc", "krcc", "plcc", "plcc_raw", "rmse"}
    assert keys <= set(metrics["test"]) and keys <= set(metrics["median"])
    assert keys <= set(metrics["std"])
    assert [s["split"] for s in metrics["splits"]] == [0, 1]
    assert metrics["trainable_params"] > 0 and metrics["train_seconds"] > 0
    config = json.loads((run / "config.json").read_text())
    assert set(config["stages"]) == {"backbone", "regions", "describe", "text"}
    assert all(len(s["fingerprint"]) == 16 for s in config["stages"].values())
    preds = pd.read_csv(run / "predictions.csv")
    assert list(preds.columns) == ["item_id", "split", "mos", "pred"]
    history = pd.read_csv(run / "history.csv")
    assert list(history.columns) == ["split", "epoch", "train_loss", "val_srcc", "lr"]
    epochs = json.loads((run / "config.json").read_text())["rsa"]["epochs"]
    assert (
        history.groupby("split")["epoch"].apply(list).tolist() == [list(range(1, epochs + 1))] * 2
    )


def test_metrics_agree_with_predictions(run):
    metrics = json.loads((run / "metrics.json").read_text())
    preds = pd.read_csv(run / "predictions.csv")
    srcc, krcc, plcc_raw = [], [], []
    for _, group in preds.groupby("split"):
        srcc.append(stats.spearmanr(group["pred"], group["mos"])[0])
        krcc.append(stats.kendalltau(group["pred"], group["mos"])[0])
        plcc_raw.append(stats.pearsonr(group["pred"], group["mos"])[0])
    assert metrics["test"]["srcc"] == pytest.approx(np.mean(srcc), abs=1e-6)
    assert metrics["test"]["krcc"] == pytest.approx(np.mean(krcc), abs=1e-6)
    assert metrics["test"]["plcc_raw"] == pytest.approx(np.mean(plcc_raw), abs=1e-6)
    assert metrics["median"]["srcc"] == pytest.approx(np.median(srcc), abs=1e-6)


def test_checkpoint_round_trip(run, cache):
    from safetensors.torch import load_file

    from qfeat.trainers.loop import predict
    from qfeat.trainers.rsa_data import load_rsa_data
    from qfeat.trainers.rsa_train import build_head, head_scorer

    config = json.loads((run / "config.json").read_text())
    data = load_rsa_data(cache, "demo", list(config["stages"]))
    model = build_head(data, config["head"])
    model.load_state_dict(load_file(str(run / "split-01.safetensors")), strict=False)
    preds = pd.read_csv(run / "predictions.csv")
    mine = preds[preds["split"] == "test@1"]
    rows = data.data.reset_index().set_index("item_id").loc[mine["item_id"], "index"].to_numpy()
    got = predict(model, head_scorer(data, torch.device("cpu"))(model), rows, 16)
    np.testing.assert_allclose(got, mine["pred"].to_numpy(), rtol=1e-5, atol=1e-6)


def test_same_command_same_numbers(run, cache, tmp_path):
    again = train(cache, tmp_path, run.name)
    a = json.loads((run / "metrics.json").read_text())
    b = json.loads((again / "metrics.json").read_text())
    assert a["splits"] == b["splits"]


def test_killed_run_resumes_with_the_same_numbers(run, cache, tmp_path):
    """A run killed during its last split: the same command on the same --run keeps the
    finished split (not retrained) and ends with the numbers of the uninterrupted run."""
    import shutil

    folder = tmp_path / run.name
    shutil.copytree(run, folder)
    for name in ("split-01.json", "split-01.safetensors", "metrics.json", "predictions.csv"):
        (folder / name).unlink()  # what a kill during split 1 leaves behind
    kept = (folder / "split-00.safetensors").stat().st_mtime_ns
    result = qfeat("train", "rsa", "demo", "--cache-dir", str(cache), "--runs-dir",
                   str(tmp_path), "--run", run.name, "--splits", "2", "--epochs", "3",
                   "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"resuming {folder}: 1 of 2 splits already finished" in result.output
    assert f"split 0: already finished in {run.name}, kept" in result.output
    assert "split 1 test:" in result.output and "split 0 test:" not in result.output
    assert (folder / "split-00.safetensors").stat().st_mtime_ns == kept
    a = json.loads((run / "metrics.json").read_text())
    b = json.loads((folder / "metrics.json").read_text())
    assert a["splits"] == b["splits"] and a["test"] == b["test"]
    for name in ("predictions.csv", "history.csv"):
        assert (folder / name).read_text() == (run / name).read_text(), name


def test_resuming_with_other_settings_is_refused(run, cache, tmp_path):
    import shutil

    shutil.copytree(run, tmp_path / run.name)
    result = qfeat("train", "rsa", "demo", "--cache-dir", str(cache), "--runs-dir",
                   str(tmp_path), "--run", run.name, "--splits", "2", "--epochs", "4",
                   "--device", "cpu")  # fmt: skip
    assert result.exit_code == 1
    assert "other settings (rsa differ)" in result.output and "--run" in result.output


def test_ablations_change_the_model(cache, tmp_path):
    params = {}
    for name, extra in {
        "rsa": (),
        "uniform": ("--attention", "uniform"),
        "global": ("--attention", "global"),
        "no-text": ("--no-text",),
        # with text, --no-ratings needs a text cache without rating words (tested below)
        "no-ratings": ("--no-ratings", "--no-text"),
    }.items():
        folder = train(cache, tmp_path, name, *extra)
        params[name] = json.loads((folder / "metrics.json").read_text())["trainable_params"]
        config = json.loads((folder / "config.json").read_text())
        if name == "global":
            assert list(config["stages"]) == ["backbone"]
        if name == "no-text":
            assert "text" not in config["stages"]
    assert params["global"] < params["uniform"] < params["rsa"]
    assert params["no-text"] < params["rsa"] and params["no-ratings"] < params["no-text"]


def test_evaluate_on_a_cache_and_refusal(run, cache, demo_images, tmp_path):
    import shutil

    run = Path(shutil.copytree(run, tmp_path / "run"))  # evaluate writes eval-demo.json
    result = qfeat("evaluate", str(run), "demo", "--cache-dir", str(cache), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["items"] == demo_images.limit and len(out["splits"]) == 2
    assert {"srcc", "plcc", "rmse"} <= set(out["test"])
    assert (run / "eval-demo.json").is_file()
    # the target dataset cached with another backbone setting: refused, saying what to do
    other_cache = tmp_path / "other"
    other = qfeat("features", "demo", "--root", str(tmp_path / "data"), "--cache-dir",
                  str(other_cache), "--limit", "12", "--workers", "1", "--stages", "backbone",
                  "--set", "backbone.input_size=64")  # fmt: skip
    assert other.exit_code == 0, other.output
    global_run = train(cache, tmp_path / "runs", "g", "--attention", "global")
    refused = CliRunner().invoke(
        app, ["evaluate", str(global_run), "demo", "--cache-dir", str(other_cache)]
    )
    assert refused.exit_code != 0
    assert "backbone" in refused.output and "qfeat stage backbone demo" in refused.output


def test_missing_stage_names_the_command(tmp_path):
    cache = tmp_path / "cache"
    made = qfeat("features", "demo", "--root", str(tmp_path / "data"), "--cache-dir",
                 str(cache), "--limit", "12", "--workers", "1", "--stages", "backbone")  # fmt: skip
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(app, ["train", "rsa", "demo", "--cache-dir", str(cache)])
    assert result.exit_code != 0
    assert "qfeat features demo" in result.output and "regions" in result.output


def test_stages_are_read_as_one_chain(cache, demo_images, tmp_path):
    """Regions recomputed with another setting (on 8 of the items: a new fingerprint
    either way) after describe and text: the trainer still reads the regions those two
    were made from, not the newer regions."""
    import shutil

    from qfeat.cache.reader import open_stage
    from qfeat.trainers.rsa_data import open_needed

    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    result = qfeat("stage", "regions", "demo", "--root", str(demo_images.data),
                   "--cache-dir", str(copy), "--set", "regions.max_regions=4",
                   "--limit", "8", "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    newest = open_stage(copy, "demo", "regions")
    assert newest.manifest["config"]["max_regions"] == 4
    opened = open_needed(copy, "demo", ["backbone", "regions", "describe", "text"])
    chain = opened["text"].manifest["upstream"]
    assert opened["regions"].fingerprint == chain["regions"] != newest.fingerprint
    assert opened["describe"].fingerprint == chain["describe"]
    assert opened["regions"].manifest["config"]["max_regions"] != 4


def test_training_defaults_to_the_preset_the_cache_was_made_with(demo_images, tmp_path):
    """A cache made with --preset tiny under a name whose default preset is paper: the
    trainer uses tiny's head (not paper's, silently) and says so first; --preset paper
    asks for a set made with paper, which is not cached (issue 37: never a mix)."""
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(demo_images.cache / "demo", cache / "mine")
    result = qfeat("train", "rsa", "mine", "--cache-dir", str(cache), "--runs-dir",
                   str(tmp_path / "runs"), "--run", "t", "--splits", "2", "--epochs", "1",
                   "--attention", "global", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    first = "preset tiny (the preset mine's backbone cache was made with): hidden 64"
    assert first in result.output
    assert json.loads((tmp_path / "runs" / "t" / "config.json").read_text())["preset"] == "tiny"
    explicit = qfeat("train", "rsa", "mine", "--cache-dir", str(cache), "--runs-dir",
                     str(tmp_path / "runs"), "--run", "p", "--splits", "2", "--epochs", "1",
                     "--attention", "global", "--device", "cpu", "--preset", "paper")  # fmt: skip
    # --preset also names the cached set: paper's is not there, so no tiny/paper mix
    assert explicit.exit_code == 1, explicit.output
    assert "qfeat features mine --preset paper" in explicit.output


def test_no_ratings_sees_no_rating_words(demo_images, qfeat, tmp_path):
    """Issue 16: the text stage embedded the rating words, so the --no-ratings ablation
    still saw them. It now needs (and names) a text cache made without them, and the run
    with ratings keeps reading the text that has them."""
    import shutil

    from qfeat.pipeline.stages.text import region_text

    assert "noise" not in region_text("a red car", {"noise": 2}, with_ratings=False)
    assert region_text("a red car", {"noise": 2}, with_ratings=False) == "a red car."
    cache = tmp_path / "cache"
    shutil.copytree(demo_images.cache, cache)
    train = ["train", "rsa", "demo", "--cache-dir", str(cache), "--runs-dir",
             str(tmp_path / "runs"), "--splits", "2", "--epochs", "1",
             "--device", "cpu"]  # fmt: skip
    refused = qfeat(*train, "--no-ratings", "--run", "a")
    assert refused.exit_code == 1 and "--set text.ratings=false" in refused.output
    made = qfeat("stage", "text", "demo", "--root", str(demo_images.data), "--cache-dir",
                 str(cache), "--limit", str(demo_images.limit), "--workers", "1",
                 "--set", "text.ratings=false")  # fmt: skip
    assert made.exit_code == 0, made.output
    for run, extra, ratings in (("a", ["--no-ratings"], False), ("b", [], True)):
        result = qfeat(*train, *extra, "--run", run)
        assert result.exit_code == 0, result.output
        config = json.loads((tmp_path / "runs" / run / "config.json").read_text())
        assert config["stages"]["text"]["config"]["ratings"] is ratings, run
