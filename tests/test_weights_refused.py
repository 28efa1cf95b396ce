"""A malicious pickle given to any weights setting is refused once, in the driver, before
any work starts, and nothing in it runs (issue 24.9 / 22)."""

from __future__ import annotations

import os
import pickle
import re

import pytest
import torch

from qfeat.errors import DatasetError
from qfeat.pipeline.models.source import require_plain_weights

# torch's own zip format names the import it refuses; a raw protocol-4 pickle fails on an
# opcode the weights-only unpickler does not take: refused either way, nothing executed
REFUSED = "not a plain weights file|cannot be read as a plain PyTorch weights file"


class Payload:
    """Unpickling this would create ``marker`` (stands for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture(params=["zip", "legacy"])
def evil(request, tmp_path):
    path = tmp_path / "evil.pth"
    payload = {"state_dict": {"w": torch.zeros(2)}, "x": Payload(tmp_path / "pwned")}
    if request.param == "zip":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    return path


def test_refused_and_nothing_runs(evil):
    with pytest.raises(DatasetError, match=f"regions.checkpoint=.*{REFUSED}"):
        require_plain_weights(evil, "regions.checkpoint")
    assert not (evil.parent / "pwned").exists()


def test_plain_weights_pass(tmp_path):
    path = tmp_path / "ok.pth"
    torch.save({"w": torch.ones(3)}, path)
    require_plain_weights(path, "backbone.weights")  # no error
    (tmp_path / "not_weights.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(DatasetError, match="cannot be read as a plain PyTorch weights file"):
        require_plain_weights(tmp_path / "not_weights.bin", "clip.pretrained")


@pytest.mark.parametrize("setting", ["regions.checkpoint", "backbone.weights", "text.pretrained"])
def test_every_image_weights_setting_refuses_before_work(setting, evil, qfeat, demo_images,
                                                         tmp_path):  # fmt: skip
    extra = {"regions.checkpoint": ["--set", "regions.model=vit_b"],
             "backbone.weights": ["--set", "backbone.model=resnet50"],
             "text.pretrained": ["--set", "text.model=ViT-B-16"]}[setting]  # fmt: skip
    stage = setting.split(".")[0]
    result = qfeat("features", "demo", "--root", str(demo_images.data), "--cache-dir",
                   str(tmp_path / "c"), "--limit", "2", "--stages", stage, *extra,
                   "--set", f"{setting}={evil}")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert re.search(REFUSED, result.output) and "Traceback" not in result.output
    assert not (evil.parent / "pwned").exists()
    assert not list((tmp_path / "c").rglob("shard-*"))  # refused before any work


def test_clip_pretrained_refuses_before_work(evil, qfeat, demo_video_data, tmp_path):
    result = qfeat("features", "demo-video", "--root", str(demo_video_data), "--cache-dir",
                   str(tmp_path / "c"), "--limit", "2", "--set", "clip.model=ViT-B-16",
                   "--set", f"clip.pretrained={evil}")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert re.search(REFUSED, result.output) and "Traceback" not in result.output
    assert not (evil.parent / "pwned").exists()
    assert not list((tmp_path / "c").rglob("shard-*"))


def test_import_qclip_refuses_a_pickle(evil, qfeat, demo_videos, tmp_path):
    result = qfeat("import", "qclip", str(evil), "demo-video", "--cache-dir",
                   str(demo_videos.cache), "--runs-dir", str(tmp_path / "runs"))  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "cannot be read as a plain PyTorch checkpoint" in result.output
    assert "Traceback" not in result.output and not (evil.parent / "pwned").exists()
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.json"))


def test_init_run_with_a_pickle_for_weights_is_refused(evil, qfeat, demo_videos, scma_run,
                                                       tmp_path):  # fmt: skip
    """``--init`` reads safetensors only: a pickle renamed into a run's checkpoint is data
    safetensors cannot parse, refused with the file's name; nothing unpickles it."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(scma_run, runs / "planted")
    for checkpoint in (runs / "planted").glob("split-*.safetensors"):
        shutil.copy(evil, checkpoint)
    result = qfeat("train", "scma", "demo-video", "--cache-dir", str(demo_videos.cache),
                   "--runs-dir", str(runs), "--init", "planted", "--splits", "1",
                   "--epochs", "1", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "split-00.safetensors" in result.output and "Traceback" not in result.output
    assert not (evil.parent / "pwned").exists()
