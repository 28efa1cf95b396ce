"""Issue 16: checkpoints of the Q-CLIP authors' release exported from and imported into
qfeat runs, with the release's names (learned from xiao-mi-d/Q-CLIP `model/qclip.py`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

from qfeat.trainers.scma_release import from_release, to_release

pytestmark = pytest.mark.slow


class ReleaseTrainables(nn.Module):
    """The trainable part of the release's QCLIP module tree, in its names and shapes."""

    def __init__(self, blocks: int, width: int, r: int, prompts: int = 5, context: int = 3):
        super().__init__()
        self.shared_core = nn.Sequential(nn.Linear(r, r), nn.GELU(), nn.Linear(r, r))
        self.encoder_adapters = nn.ModuleList(
            nn.ModuleDict(
                {
                    "down_proj": nn.Linear(width, r),
                    "up_proj": nn.Linear(r, width),
                    "ln": nn.LayerNorm(width),
                }
            )
            for _ in range(blocks)
        )
        self.proj_adapter = nn.Sequential(
            nn.Linear(width, r), nn.Linear(r, r), nn.GELU(), nn.Linear(r, width)
        )
        for name in ("image", "text", "image_proj", "text_proj"):
            self.register_parameter(f"{name}_adapter_weight", nn.Parameter(torch.tensor(0.1)))
        self.context_tokens = nn.Parameter(torch.zeros(1, context, width))
        self.score_proj = nn.Parameter(torch.zeros(prompts, 1))


@pytest.fixture(scope="module")
def pe64(tmp_path_factory):
    """A tiny PE whose width equals its embedding size (64), as an open_clip folder: the
    release's projection adapter needs width == embedding size (PE-Core-L: 1024)."""
    import open_clip

    from tests.fixtures.open_clip_folder import tiny_open_clip_folder

    folder = tmp_path_factory.mktemp("pe64")
    preprocess = {"mean": [0.5] * 3, "std": [0.5] * 3}
    source = tiny_open_clip_folder(folder, embed_dim=64, preprocess=preprocess)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(source)
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return source


def test_names_round_trip():
    state = {
        "context": torch.randn(3, 8),
        "score_proj": torch.randn(5, 1),
        "scma.down.1.weight": torch.randn(4, 8),
        "scma.norm.0.bias": torch.randn(8),
        "scma.core.0.weight": torch.randn(4, 4),
        "scma.core.2.weight": torch.randn(4, 4),
        "scma.proj.3.weight": torch.randn(8, 4),
        "scma.alpha.txt": torch.tensor(0.2),
        "scma.beta.img": torch.tensor(0.3),
    }
    release = to_release(state, blocks=24, k=6)
    assert set(release) == {
        "context_tokens", "score_proj", "encoder_adapters.19.down_proj.weight",
        "encoder_adapters.18.ln.bias", "shared_core.0.weight", "shared_core.2.weight",
        "proj_adapter.3.weight",
        "text_adapter_weight", "image_proj_adapter_weight",
    }  # fmt: skip
    assert release["context_tokens"].shape == (1, 3, 8)
    release["encoder_adapters.3.ln.bias"] = torch.zeros(8)  # an unused layer: ignored
    release["clip_model.visual.conv1.weight"] = torch.zeros(1)  # the frozen PE: ignored
    back = from_release(release, blocks=24, k=6)
    assert set(back) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(back[key], value)


def test_export_then_import_gives_the_same_predictions(qfeat, tmp_path, demo_video_data, pe64):
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    where = ("--cache-dir", str(cache), "--runs-dir", str(runs))
    made = qfeat("features", "demo-video", "--root", str(demo_video_data), "--cache-dir",
                 str(cache), "--limit", "16", "--workers", "1", "--set", f"clip.model={pe64}",
                 "--set", "clip.rope=qclip-release")  # fmt: skip
    assert made.exit_code == 0, made.output
    trained = qfeat("train", "scma", "demo-video", *where, "--run", "mine", "--splits", "1",
                    "--epochs", "2", "--device", "cpu")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "release.pth"
    exported = qfeat("export", "qclip", "mine", "--runs-dir", str(runs), "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert "adapter_start_layer=0" in exported.output  # tiny PE: 2 blocks, both adapted
    checkpoint = torch.load(out, weights_only=True)
    release = ReleaseTrainables(blocks=2, width=64, r=8)
    result = release.load_state_dict(checkpoint["state_dict"], strict=False)
    assert not result.unexpected_keys and not result.missing_keys
    # as the release's train.py saves it: the whole model, DataParallel prefixes
    full = {f"module.{k}": v for k, v in checkpoint["state_dict"].items()}
    full["module.clip_model.visual.conv1.weight"] = torch.zeros(64, 3, 4, 4)
    torch.save({"state_dict": full, "validation_results": {"srocc": 0.5}}, out)
    imported = qfeat("import", "qclip", str(out), "demo-video", *where, "--run", "theirs",
                     "--splits", "1", "--device", "cpu")  # fmt: skip
    assert imported.exit_code == 0, imported.output
    assert "imported, not trained" in imported.output
    mine = pd.read_csv(runs / "mine" / "predictions.csv")
    theirs = pd.read_csv(runs / "theirs" / "predictions.csv")
    assert list(theirs["item_id"]) == list(mine["item_id"])
    pd.testing.assert_series_equal(theirs["pred"], mine["pred"], rtol=1e-5)
    config = json.loads((runs / "theirs" / "config.json").read_text())
    assert config["imported"] == "qclip" and config["scma"]["r"] == 8


def test_export_refuses_towers_the_release_cannot_hold(qfeat, scma_run):
    out = qfeat("export", "qclip", str(scma_run))
    assert out.exit_code == 1 and "only holds towers whose width equals" in out.output


def test_import_refuses_what_is_not_a_qclip_checkpoint(qfeat, tmp_path, demo_videos):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, path)
    out = qfeat("import", "qclip", str(path), "demo-video", "--cache-dir", str(demo_videos.cache),
                "--runs-dir", str(tmp_path / "runs"))  # fmt: skip
    assert out.exit_code == 1 and "not a Q-CLIP checkpoint" in out.output
