"""The backbone registry and the backbone stage: shapes, exactness, weights, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qfeat.errors import DatasetError
from qfeat.pipeline.models.backbones import build_backbone
from qfeat.pipeline.stages.backbone import BackboneStage
from tests.fixtures.media import bomb_png


@pytest.mark.parametrize(
    "name, weights, channels, grid, size",
    [
        ("tiny", "", 64, (32, 32), 128),
        ("resnet18", "random", 512, (4, 4), 128),
        ("clip:tiny-vit", "", 64, (4, 4), 32),
        ("clip:tiny-pe", "", 64, (8, 8), 32),
        ("timm:resnet10t", "random", 512, (4, 4), 128),
        ("timm:vit_tiny_patch16_224", "random", 192, (8, 8), 128),
    ],
)
def test_registry_shapes(name, weights, channels, grid, size):
    bb = build_backbone(name, weights, seed=0, input_size=128)
    assert (bb.channels, bb.grid, bb.input_size) == (channels, grid, size)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = bb.module(x)
    assert out.shape == (2, channels, *grid)
    assert not any(p.requires_grad for p in bb.module.parameters())


def test_seeded_builds_are_identical_and_seed_matters():
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = build_backbone("tiny", seed=3, input_size=64).module(x)
        b = build_backbone("tiny", seed=3, input_size=64).module(x)
        c = build_backbone("tiny", seed=4, input_size=64).module(x)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_clip_patch_tokens_are_open_clips_own_tokens():
    from qfeat.pipeline.models.clip_build import build_clip

    bb = build_backbone("clip:tiny-vit", seed=0)
    model, _ = build_clip("tiny-vit", seed=0)
    model.visual.output_tokens = True
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, tokens = model.visual(x)  # [B, 16, width] after ln_post, class token dropped
        grid = bb.module(x)
    expected = tokens.transpose(1, 2).reshape(2, 64, 4, 4)
    torch.testing.assert_close(grid, expected, rtol=1e-5, atol=1e-6)


def test_torchvision_weights_from_a_local_file(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(7)
    reference = resnet18(weights=None).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    bb = build_backbone("resnet18", str(path), input_size=64)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = torch.nn.Sequential(*list(reference.children())[:-2])(x)
        torch.testing.assert_close(bb.module(x), want)


def test_pickled_objects_are_refused(tmp_path):
    """weights_only=True: a checkpoint carrying arbitrary objects is not unpickled."""
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": DatasetError("x")}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        build_backbone("resnet18", str(path), input_size=64)


def test_missing_weights_and_unknown_names_are_clear(tmp_path):
    with pytest.raises(DatasetError, match="--set backbone.weights"):
        build_backbone("resnet50", str(tmp_path / "nope.pth"))
    stage = BackboneStage({"model": "resnet50", "weights": "", "input_size": 64})
    with pytest.raises(DatasetError, match="--set backbone.weights"):
        stage.check()
    with pytest.raises(DatasetError, match="unknown backbone 'vgg'"):
        BackboneStage({"model": "vgg", "weights": "", "input_size": 64}).check()


def test_stage_rows_arrays_and_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for i in range(3):
        path = tmp_path / f"ok{i}.png"
        Image.fromarray(rng.integers(0, 255, (40 + 10 * i, 60, 3), np.uint8)).save(path)
        items.append({"item_id": path.name, "path": str(path)})
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8garbage")
    items.insert(1, {"item_id": "bad.jpg", "path": str(tmp_path / "bad.jpg")})
    bomb = bomb_png(tmp_path / "bomb.png")
    items.append({"item_id": "bomb.png", "path": str(bomb)})
    stage = BackboneStage({"model": "clip:tiny-vit", "weights": "", "input_size": 64})
    stage.check()
    stage.load()
    table, arrays = stage.process_shard(items)
    rows = table.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "decode_error", "ok", "ok", "too_large"]
    assert "bad.jpg" in rows[1]["error"] and "bomb.png" in rows[4]["error"]
    assert [r["height"] for r in rows if r["status"] == "ok"] == [40, 50, 60]
    feats = arrays["features"]
    assert feats.shape == (5, 64, 4, 4)
    assert not feats[1].any() and not feats[4].any()
    assert feats[0].any() and not np.allclose(feats[0], feats[2])


GOLDEN = Path(__file__).parent / "golden" / "backbone_text_tiny.json"


def test_golden_backbone_and_text_outputs():
    """Seeded tiny backbone and text tower on a fixed image / sentence give stored numbers.

    Regenerate with ``QFEAT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest
    tests/test_backbones.py -k golden``.
    """
    from qfeat.pipeline.stages.backbone import squash_normalise
    from qfeat.pipeline.stages.text import TextStage

    y, x = np.mgrid[0:96, 0:128]
    image = np.stack([x * 2 % 256, y * 2 % 256, (x + y) % 256], axis=2).astype(np.uint8)
    bb = build_backbone("tiny", seed=0, input_size=128)
    pixels = torch.from_numpy(squash_normalise(image, 128, bb.mean, bb.std))[None]
    with torch.no_grad():
        fmap = bb.module(pixels)[0]
    text = TextStage({"model": "tiny", "pretrained": ""}, seed=0)
    text.load()
    emb = text.encode(["a red ball on grass. colour: good, noise: poor"])[0]
    got = {
        "backbone_channel_means": fmap.mean((1, 2))[:8].tolist(),
        "backbone_sum": float(fmap.sum()),
        "text_first": emb[:8].tolist(),
        "text_norm": float(np.linalg.norm(emb)),
    }
    if os.environ.get("QFEAT_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
        pytest.skip(f"wrote {GOLDEN}")
    want = json.loads(GOLDEN.read_text())
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_clip_backbone_identity_carries_the_toy_architecture():
    """clip:<tiny> backbones are the clip stage's tiny towers: same architecture hash, own name."""
    from qfeat.pipeline.models.clip_build import tiny_architecture

    for weights in ("", "random"):
        stage = BackboneStage({"model": "clip:tiny-pe", "weights": weights, "input_size": 64})
        identity = stage.model_identity()
        assert identity["name"] == "clip:tiny-pe" and identity["init"] == "random"
        assert identity["arch"] == tiny_architecture("tiny-pe")
    assert "arch" not in BackboneStage({"model": "resnet18", "weights": "random"}).model_identity()


def test_tiny_resnet_identity_follows_its_architecture(monkeypatch):
    """The toy ResNet's identity carries its architecture hash: another block count in
    layer1 (what the stage keeps) gives a new identity and cache."""
    from qfeat.pipeline.models import backbones

    before = BackboneStage({"model": "tiny", "input_size": 64}, seed=0).model_identity()
    assert before["arch"] == backbones.tiny_architecture()
    monkeypatch.setattr(backbones, "TINY_LAYERS", [2, 1, 1, 1])
    backbones.tiny_architecture.cache_clear()
    try:
        after = BackboneStage({"model": "tiny", "input_size": 64}, seed=0).model_identity()
    finally:
        backbones.tiny_architecture.cache_clear()
    assert after["arch"] != before["arch"] and after["seed"] == before["seed"]
