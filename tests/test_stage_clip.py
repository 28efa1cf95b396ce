"""The clip stage: chosen frames only, squashed and normalised, split features exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qfeat.cache.reader import open_stage
from qfeat.pipeline.config import load_preset
from qfeat.pipeline.models.clip_split import finish_from_hidden
from qfeat.pipeline.stages.base import Upstream
from qfeat.pipeline.stages.clip import ClipStage, squash
from qfeat.pipeline.stages.frames import FramesStage


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[dict]:
    from qfeat.pipeline.demo.videos import clip_frames, encode_mp4

    root = tmp_path_factory.mktemp("clips")
    items = []
    for i, content in enumerate(("ball", "zoom-rings", "pan-stripes")):
        path = root / f"{content}.mp4"
        encode_mp4(path, clip_frames(content, "ref", 0, np.random.default_rng(i)), crf=18)
        items.append({"item_id": path.name, "path": str(path)})
    return items


def frames_rows(items: list[dict]) -> dict[str, dict]:
    table, _ = FramesStage(load_preset("tiny")["frames"]).process_shard(items)
    return {r["item_id"]: r for r in table.to_pylist()}


def upstream(rows: dict[str, dict]) -> Upstream:
    """The frames rows and the tiny preset's frames settings, as a worker reads them."""
    return Upstream({"frames": rows}, {"frames": load_preset("tiny")["frames"]})


def clip_stage(model: str) -> ClipStage:
    stage = ClipStage({**load_preset("tiny")["clip"], "model": model}, seed=0)
    stage.load()
    return stage


@pytest.mark.parametrize("model, tokens", [("tiny-pe", 65), ("tiny-vit", 17)])
def test_hidden_states_reproduce_pooled_embedding(clips, model, tokens):
    stage = clip_stage(model)
    table, arrays = stage.process_shard(clips, upstream(frames_rows(clips)))
    assert table.column("status").to_pylist() == ["ok"] * 3
    emb, hidden = arrays["embeddings"], arrays["hidden"]
    assert emb.shape == (3, 8, 32) and hidden.shape == (3, 8, tokens, 64)
    for i in range(3):
        with torch.no_grad():
            finished = finish_from_hidden(stage.model, torch.from_numpy(hidden[i]), stage.k)
        np.testing.assert_allclose(finished.numpy(), emb[i], rtol=1e-4, atol=1e-6)
    assert not np.allclose(emb[0], emb[1])  # different videos, different features


def test_only_chosen_frames_are_decoded(clips, monkeypatch):
    import qfeat.pipeline.video.reader as reader_module

    requested = []
    real = reader_module.open_video

    def spy(path):
        reader = real(path)
        original = reader.frames

        def frames(indices):
            requested.append(list(indices))
            return original(indices)

        reader.frames = frames
        return reader

    monkeypatch.setattr(reader_module, "open_video", spy)
    rows = frames_rows(clips[:1])
    clip_stage("tiny-pe").process_shard(clips[:1], upstream(rows))
    assert requested == [list(rows[clips[0]["item_id"]]["indices"])]


def test_squash_resizes_without_crop_and_normalises():
    frame = np.zeros((1, 20, 60, 3), np.uint8)
    frame[:, :, :30] = 255  # left half white
    out = squash(frame, (32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bilinear")
    assert out.shape == (1, 3, 32, 32)
    assert out[0, 0, :, :14].min() == pytest.approx(1.0) and out[
        0, 0, :, 18:
    ].max() == pytest.approx(-1.0)


def test_failed_frames_row_gives_upstream_error(clips):
    rows = frames_rows(clips[:2])
    rows[clips[1]["item_id"]] = {**rows[clips[1]["item_id"]], "status": "decode_error"}
    table, arrays = clip_stage("tiny-pe").process_shard(clips[:2], upstream(rows))
    assert table.column("status").to_pylist() == ["ok", "upstream_error"]
    assert not arrays["hidden"][1].any()


def test_one_forward_per_batch_and_none_at_load(clips):
    """Loading runs no forward (a PE-Core-L frame is ~10 s on a CPU); the shapes of the
    zero arrays of failed items come from the shard's own forward, or from one blank
    frame when every item of the shard failed."""
    stage = clip_stage("tiny-pe")
    calls = []
    encode = stage.encode
    stage.encode = lambda model, x, k: calls.append(len(x)) or encode(model, x, k)
    rows = frames_rows(clips[:2])
    rows[clips[1]["item_id"]] = {**rows[clips[1]["item_id"]], "status": "decode_error"}
    _, arrays = stage.process_shard(clips[:2], upstream(rows))
    assert calls == [8] and arrays["hidden"].shape == (2, 8, 65, 64)

    fresh = clip_stage("tiny-pe")
    fresh.encode = stage.encode
    failed = {k: {**r, "status": "decode_error"} for k, r in rows.items()}
    table, arrays = fresh.process_shard(clips[:2], upstream(failed))
    assert table.column("status").to_pylist() == ["upstream_error"] * 2
    assert calls == [8, 1]  # the blank frame, for the shapes
    assert arrays["hidden"].shape == (2, 8, 65, 64) and not arrays["hidden"].any()
    assert arrays["embeddings"].shape == (2, 8, 32) and arrays["pooled"].shape == (2, 8, 64)


def test_features_demo_video_computes_frames_and_clip(qfeat, demo_video_data, tmp_path):
    cache = tmp_path / "cache"
    result = qfeat("features", "demo-video", "--root", str(demo_video_data), "--cache-dir",
                   str(cache), "--limit", "6", "--shard-size", "3", "--workers", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    clip = open_stage(cache, "demo-video", "clip")
    frames = open_stage(cache, "demo-video", "frames")
    assert clip.manifest["upstream"] == {"frames": frames.fingerprint}
    emb, hidden = clip.array("embeddings"), clip.array("hidden")
    assert emb.dtype == hidden.dtype == np.float16
    assert emb.shape == (6, 8, 32) and hidden.shape == (6, 8, 65, 64)
    stage = clip_stage("tiny")
    with torch.no_grad():
        finished = finish_from_hidden(
            stage.model, torch.from_numpy(hidden[0].astype(np.float32)), 2
        )
    # from the fp16 cache: equal up to fp16 rounding of the stored tensors
    np.testing.assert_allclose(finished.numpy(), emb[0].astype(np.float32), rtol=2e-2, atol=2e-3)


def test_paper_preset_needs_weights(tmp_path):
    from qfeat.errors import DatasetError

    with pytest.raises(DatasetError, match="clip.pretrained"):
        ClipStage(load_preset("paper")["clip"]).check()
    ClipStage({**load_preset("paper")["clip"], "pretrained": "random"}).check()
    weights = Path(tmp_path / "pe.bin")
    torch.save({"w": torch.zeros(2)}, weights)
    ClipStage({**load_preset("paper")["clip"], "pretrained": str(weights)}).check()
    weights.write_bytes(b"x")  # not a weights file: refused before any work
    with pytest.raises(DatasetError, match="cannot be read as a plain PyTorch weights file"):
        ClipStage({**load_preset("paper")["clip"], "pretrained": str(weights)}).check()


def test_tiny_architecture_is_part_of_the_model_identity(monkeypatch):
    """A changed toy config gives another identity (so another cache), the same one does not."""
    from qfeat.pipeline.models import clip_build

    before = clip_stage("tiny-pe").model_identity()
    assert before == clip_stage("tiny-pe").model_identity()
    monkeypatch.setitem(clip_build._TINY_PE_TRUNK_KWARGS, "depth", 3)
    after = clip_stage("tiny-pe").model_identity()
    assert after["arch"] != before["arch"] and after["name"] == before["name"]


def test_rope_order_is_checked_stored_and_used(qfeat, tmp_path):
    """clip.rope: refused for a non-PE tower before any work, part of the fingerprint,
    applied by the stage and by the model the trainers rebuild from the cache."""
    from types import SimpleNamespace

    from qfeat.pipeline.models.pe_rope import ReleaseOrder
    from qfeat.trainers.scma_train import load_clip_for

    out = qfeat("features", "demo-video", "--root", str(tmp_path / "d"), "--cache-dir",
                str(tmp_path / "c"), "--set", "clip.model=tiny-vit",
                "--set", "clip.rope=qclip-release")  # fmt: skip
    assert out.exit_code == 2 and "applies to PE towers" in out.output
    assert not (tmp_path / "d").exists()  # refused before the demo set was generated
    bad = qfeat("features", "demo-video", "--set", "clip.rope=meta")
    assert bad.exit_code == 2 and "clip.rope" in bad.output
    release = {**load_preset("tiny")["clip"], "rope": "qclip-release"}
    stage = ClipStage(release, seed=0)
    stage.load()
    assert isinstance(stage.model.visual.trunk.rope, ReleaseOrder)
    manifest = {"config": {**release, "seed": 0}, "model": stage.model_identity()}
    model, _, cfg = load_clip_for(SimpleNamespace(manifest=manifest))
    assert isinstance(model.visual.trunk.rope, ReleaseOrder) and cfg["rope"] == "qclip-release"
    older = {"config": {k: v for k, v in manifest["config"].items() if k != "rope"},
             "model": manifest["model"]}  # fmt: skip
    model, _, _ = load_clip_for(SimpleNamespace(manifest=older))  # made before clip.rope
    assert not isinstance(model.visual.trunk.rope, ReleaseOrder)
