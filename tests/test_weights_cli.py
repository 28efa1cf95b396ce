"""`qfeat weights` without real-size files (the fast suite's share of issue 18; the
real-format files are checked in tests/test_paper_preset.py)."""

from __future__ import annotations

import json

import pytest
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


def _tiny_open_clip_folder(folder, embed_dim: int = 32):
    """A tiny-pe open_clip folder with its config only; returns the model it describes."""
    import open_clip

    from tests.fixtures.open_clip_folder import tiny_open_clip_folder

    return open_clip.create_model(tiny_open_clip_folder(folder, embed_dim=embed_dim))


def test_local_dir_folders_are_checked(tmp_path):
    """A local-dir: clip model is the folder: its config must build, a weights file must
    be there (open_clip would otherwise build random weights) and hold the config's
    shapes. The good folder comes back as the --set line; `qfeat features` refuses a
    folder without weights before any work."""
    from safetensors.torch import save_file

    from qfeat.errors import DatasetError
    from qfeat.pipeline.config import resolve_config
    from qfeat.pipeline.stages import get_stage, stage_settings

    good = _tiny_open_clip_folder(tmp_path / "good")
    save_file(good.state_dict(), str(tmp_path / "good" / "open_clip_model.safetensors"))
    other = _tiny_open_clip_folder(tmp_path / "other", embed_dim=48)
    _tiny_open_clip_folder(tmp_path / "wrong")  # config says 32, weights are 48 wide
    torch.save(other.state_dict(), tmp_path / "wrong" / "open_clip_pytorch_model.bin")
    _tiny_open_clip_folder(tmp_path / "empty")

    def row(name: str) -> tuple[int, dict, str]:
        result = weights("--preset", "tiny", "--stages", "clip",
                         "--set", f"clip.model=local-dir:{tmp_path / name}")  # fmt: skip
        out = json.loads(result.stdout)
        [only] = out["weights"]
        return result.exit_code, only, out["use"]

    code, ok, use = row("good")
    assert code == 0 and (ok["setting"], ok["status"]) == ("clip.model", "ok")
    assert ok["parameters"] == sum(p.numel() for p in good.parameters())
    assert len(ok["sha256"]) == 64
    assert use == f"--preset tiny --set clip.model=local-dir:{tmp_path / 'good'}"
    code, wrong, _ = row("wrong")
    assert code == 1 and wrong["status"] == "wrong"
    assert "in the file" in wrong["message"] and "open_clip_config.json" in wrong["message"]
    code, empty, _ = row("empty")
    assert code == 1 and empty["status"] == "wrong"
    assert "holds no weights file" in empty["message"]
    code, missing, _ = row("missing")
    assert code == 1 and missing["status"] == "missing"
    both = weights("--preset", "tiny", "--stages", "clip",
                   "--set", f"clip.model=local-dir:{tmp_path / 'good'}",
                   "--set", "clip.pretrained=random")  # fmt: skip
    assert both.exit_code == 2 and "leave clip.pretrained empty" in both.output  # as features

    cfg = resolve_config("tiny", [f"clip.model=local-dir:{tmp_path / 'empty'}"], stage_settings())
    stage = get_stage("clip")(cfg["clip"], seed=0)
    with pytest.raises(DatasetError, match="holds no weights file"):
        stage.check()
