"""`qfeat weights` without real-size files (the fast suite's share of issue 18; the
real-format files are checked in tests/test_paper_preset.py)."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from qfeat.cli.main import app


def weights(*args: str):
    return CliRunner().invoke(app, ["weights", "--json", *args], catch_exceptions=False)


def test_tiny_needs_no_file_and_paper_lists_each_official_one():
    tiny = json.loads(weights("--preset", "tiny").stdout)
    assert {r["status"] for r in tiny["weights"]} == {"built in"}
    paper = weights("--preset", "paper", "--stages", "regions,backbone")
    assert paper.exit_code == 0
    rows = {r["setting"]: r for r in json.loads(paper.stdout)["weights"]}
    assert list(rows) == ["regions.checkpoint", "backbone.weights"]
    assert rows["regions.checkpoint"]["official"] == "sam_vit_h_4b8939.pth"
    assert rows["regions.checkpoint"]["parameters"] == 641_090_608  # SAM ViT-H, on meta
    assert rows["regions.checkpoint"]["status"] == "not set"
    assert "--set regions.checkpoint=" in rows["regions.checkpoint"]["message"]


def test_missing_and_mismatched_files_exit_1_with_the_key(tmp_path):
    import torchvision

    small = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), small)
    result = weights("--preset", "paper", "--stages", "regions,backbone",
                     "--set", f"regions.checkpoint={tmp_path / 'nope.pth'}",
                     "--set", f"backbone.weights={small}")  # fmt: skip
    assert result.exit_code == 1
    rows = {r["setting"]: r for r in json.loads(result.stdout)["weights"]}
    assert rows["regions.checkpoint"]["status"] == "missing"
    assert rows["backbone.weights"]["status"] == "wrong"
    assert rows["backbone.weights"]["message"] == (
        "layer1.0.conv1.weight is [64, 64, 3, 3] in the file but [64, 64, 1, 1] in resnet50"
    )
    good = weights("--preset", "paper", "--stages", "backbone", "--set", "backbone.model=resnet18",
                   "--set", f"backbone.weights={small}")  # fmt: skip
    assert good.exit_code == 0
    row = json.loads(good.stdout)["weights"][0]
    assert row["status"] == "ok" and row["parameters"] == 11_689_512
    assert json.loads(good.stdout)["use"] == (
        f"--preset paper --set backbone.model=resnet18 --set backbone.weights={small}"
    )
