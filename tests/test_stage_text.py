"""The text stage: one open_clip text embedding per region, in the region's slot."""

from __future__ import annotations

import numpy as np
import pytest

from qfeat.errors import DatasetError
from qfeat.pipeline.config import load_preset
from qfeat.pipeline.stages.base import Upstream
from qfeat.pipeline.stages.text import TextStage, region_text, region_texts

K = 4


def describe_row(ids, contents, rating):
    n = len(ids)
    return {
        "status": "ok",
        "region_id": np.array(ids),
        "content": np.array(contents, dtype=object),
        **{d: np.array([rating] * n, dtype=object) for d in ("colour", "noise", "artifact")},
        "blur": np.array([None] * n, dtype=object),
        "overall": np.array([5] * n, dtype=object),
    }


def upstream(regions: dict, describe: dict) -> Upstream:
    """Rows of the regions and describe stages, and a regions cache of K regions."""
    return Upstream({"regions": regions, "describe": describe}, {"regions": {"max_regions": K}})


@pytest.fixture(scope="module")
def stage():
    s = TextStage(load_preset("tiny")["text"], seed=0)
    s.load()
    return s


def test_region_text_words_and_unknowns():
    text = region_text("a dog on grass.", {"colour": 4, "noise": 2, "blur": None, "overall": 9})
    assert text == (
        "a dog on grass. colour: good, noise: poor, artifact: unknown, blur: unknown, "
        "overall: unknown"
    )
    assert region_text(None, {"overall": 1}).startswith("colour: unknown")
    assert region_text(float("nan"), {"overall": 1}).endswith("overall: bad")


def test_embeddings_fill_region_slots(stage):
    rows = {
        "a": describe_row([0, 1, K], ["a red ball", "blue sky", "rest"], 3),
        "b": describe_row([0], ["a red ball"], 1),
    }
    items = [{"item_id": i, "path": ""} for i in ("a", "b", "c")]
    table, arrays = stage.process_shard(items, upstream({i: {"status": "ok"} for i in rows}, rows))
    status = table.column("status").to_pylist()
    assert status == ["ok", "ok", "upstream_error"]
    emb, mask = arrays["embeddings"], arrays["mask"]
    assert emb.shape == (3, K + 1, stage.dim) and mask.dtype == np.uint8
    assert mask.tolist() == [[1, 1, 0, 0, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert table.column("regions").to_pylist()[:2] == [3, 1]
    want = stage.encode([t for _, t in region_texts(rows["a"])])
    np.testing.assert_allclose(emb[0][[0, 1, K]], want, rtol=1e-5, atol=1e-6)
    assert not emb[0, 2].any()
    # same description, different ratings -> different embedding
    assert not np.allclose(emb[0, 0], emb[1, 0])


def test_region_id_outside_slots_is_an_error_row(stage):
    rows = {"a": describe_row([K + 1], ["x"], 3)}
    table, _ = stage.process_shard(
        [{"item_id": "a", "path": ""}], upstream({"a": {"status": "ok"}}, rows)
    )
    assert table.column("status").to_pylist() == ["error"]


def test_missing_weights_named():
    with pytest.raises(DatasetError, match="--set text.pretrained"):
        TextStage({"model": "ViT-B-16", "pretrained": ""}).check()
    TextStage({"model": "ViT-B-16", "pretrained": "random"}).check()


def test_tiny_text_identity_carries_the_toy_architecture(monkeypatch):
    """The text stage shares the clip towers' tiny configs, so a changed toy config gives it
    a new identity (and cache) as well."""
    from qfeat.pipeline.models import clip_build

    cfg = load_preset("tiny")["text"]
    before = TextStage(cfg, seed=0).model_identity()
    assert before["arch"] == clip_build.tiny_architecture("tiny-vit")
    monkeypatch.setitem(clip_build.TINY_CONFIGS["tiny-vit"]["text_cfg"], "layers", 3)
    assert TextStage(cfg, seed=0).model_identity()["arch"] != before["arch"]


def test_local_dir_folder_is_the_text_model(stage, tmp_path):
    """An open_clip folder (config + weights) as text.model: checked before work (no
    weights file, or a pretrained file as well, is refused), hashed file by file, and it
    embeds as the model saved in it; `qfeat weights` checks it as the text.model row."""
    import json

    import torch
    from typer.testing import CliRunner

    from qfeat.cli.main import app
    from qfeat.errors import OptionError
    from qfeat.pipeline.models import clip_build
    from tests.fixtures.open_clip_folder import tiny_open_clip_folder

    folder = tmp_path / "tiny-vit-folder"
    model = tiny_open_clip_folder(folder, "tiny-vit")
    with pytest.raises(DatasetError, match="holds no weights file"):
        TextStage({"model": model, "pretrained": ""}).check()
    saved, _ = clip_build.build_clip("tiny-vit", seed=0)  # the tiny text stage's model
    torch.save(saved.state_dict(), folder / "open_clip_pytorch_model.bin")
    with pytest.raises(OptionError, match="leave text.pretrained empty"):
        TextStage({"model": model, "pretrained": "random"}).check()

    local = TextStage({"model": model, "pretrained": ""}, seed=5)
    local.check()
    assert set(local.model_identity()["sha256"]) == {
        "open_clip_config.json", "open_clip_pytorch_model.bin"}  # fmt: skip
    local.load()
    texts = ["a red ball. colour: good", "blue sky"]
    np.testing.assert_allclose(local.encode(texts), stage.encode(texts), rtol=1e-5, atol=1e-6)

    result = CliRunner().invoke(app, ["weights", "--json", "--preset", "tiny", "--stages",
                                      "text", "--set", f"text.model={model}"])  # fmt: skip
    [row] = json.loads(result.stdout)["weights"]
    assert result.exit_code == 0 and (row["setting"], row["status"]) == ("text.model", "ok")
