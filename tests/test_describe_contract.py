"""The describe stage's contract without a model: schema, prompt version, region views,
settings and source checks."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pytest

from qfeat.errors import DatasetError, OptionError
from qfeat.pipeline.describe.prompt import (
    GREY,
    PROMPT_VERSION,
    region_view,
    resize_mask,
)
from qfeat.pipeline.stages.describe import DescribeStage
from tests.describe_helpers import TINY_CFG, picture, region_masks


def test_schema_is_the_contract():
    assert DescribeStage({}).schema() == pa.schema(
        [
            ("region_id", pa.list_(pa.int32())),
            ("content", pa.list_(pa.string())),
            ("colour", pa.list_(pa.int8())),
            ("noise", pa.list_(pa.int8())),
            ("artifact", pa.list_(pa.int8())),
            ("blur", pa.list_(pa.int8())),
            ("overall", pa.list_(pa.int8())),
            ("raw", pa.list_(pa.string())),
            ("parse_ok", pa.list_(pa.bool_())),
            ("prompt_version", pa.string()),
        ]
    )
    assert (DescribeStage.name, DescribeStage.modality) == ("describe", "image")
    assert (DescribeStage.upstream, DescribeStage.arrays) == (("regions",), ())


def test_prompt_text_is_hashed_into_the_fingerprint(monkeypatch):
    """Editing the wording gives the describe stage a new fingerprint by itself: the texts
    are part of ``constants()``, which the manifest hashes (no version to bump)."""
    from qfeat.pipeline.describe import prompt
    from tests.cache_helpers import manifest_for

    def fingerprint() -> str:
        return manifest_for(constants=DescribeStage.constants())["fingerprint"]

    before, text = fingerprint(), DescribeStage.constants()["prompt"]
    assert prompt.QUESTION in text and prompt.RATE_QUESTION in text
    assert "describe-" + hashlib.sha256(text.encode()).hexdigest()[:12] == PROMPT_VERSION
    monkeypatch.setattr(prompt, "QUESTION", prompt.QUESTION.replace("few words", "sentence"))
    assert fingerprint() != before


def test_region_view_greys_outside_the_mask():
    img = picture(0)
    bar, disc, _, rest = region_masks(*img.shape[:2])
    view = region_view(img, disc, max_side=448, margin=0.1)
    ys, xs = np.nonzero(disc)
    pad = round(0.1 * max(np.ptp(xs) + 1, np.ptp(ys) + 1)) + 2
    y0, x0 = max(0, ys.min() - pad), max(0, xs.min() - pad)
    y1, x1 = min(img.shape[0], ys.max() + 1 + pad), min(img.shape[1], xs.max() + 1 + pad)
    assert view.shape == (y1 - y0, x1 - x0, 3) and view.dtype == np.uint8
    crop, inside = img[y0:y1, x0:x1], disc[y0:y1, x0:x1]
    assert (view[~inside] == GREY).all()
    np.testing.assert_array_equal(view[inside], crop[inside])
    assert (region_view(img, rest) != GREY).any()  # the rest region spans the image


def test_region_view_sizes():
    img = np.full((400, 1000, 3), 7, np.uint8)
    mask = np.ones((400, 1000), bool)
    assert region_view(img, mask, max_side=100).shape == (40, 100, 3)
    assert region_view(img, mask, max_side=2000).shape == (400, 1000, 3)  # never upscaled
    strip = np.zeros((400, 1000), bool)
    strip[200, 100:900] = True
    view = region_view(img, strip, margin=0.0)
    assert max(view.shape[:2]) <= 20 * min(view.shape[:2])  # padded to a sane aspect ratio
    empty = region_view(img, np.zeros((400, 1000), bool), bbox=(10, 10, 30, 20))
    assert (empty == GREY).all() and empty.shape[0] > 0


def test_resize_mask_nearest():
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:4] = True
    big = resize_mask(mask, 8, 12)
    assert big.shape == (8, 12) and big.sum() == 16
    np.testing.assert_array_equal(resize_mask(big, 4, 6), mask)


def test_check_messages(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for ok in ("tiny", str(tmp_path), "Qwen/Qwen2.5-VL-7B-Instruct"):
        DescribeStage({**TINY_CFG, "model": ok}).check()
    for bad in ("/no/such/folder", "qwen-vl", "not a model/at all", "../x/y"):
        with pytest.raises(DatasetError) as err:
            DescribeStage({**TINY_CFG, "model": bad}).check()
        assert f"describe model '{bad}' not found" in str(err.value)
        assert "--set describe.model=/path/to/local/model_folder or a hub id" in str(err.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match="HF_HUB_OFFLINE=1"):
        DescribeStage({**TINY_CFG, "model": "Qwen/Qwen2.5-VL-7B-Instruct"}).check()
    snapshot = tmp_path / "hub" / "models--org--cached" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc")
    DescribeStage({**TINY_CFG, "model": "org/cached"}).check()
    for key, value, hint in (
        ("mode", "sample", "describe.mode"),
        ("dtype", "int8", "describe.dtype"),
        ("batch_size", 0, "describe.batch_size"),
        ("max_new_tokens", "8", "describe.max_new_tokens"),
        ("max_side", 0, "describe.max_side"),
        ("margin", -1, "describe.margin"),
    ):
        # a bad setting is a usage error as soon as the stage's settings are built
        with pytest.raises(OptionError, match=hint):
            DescribeStage({**TINY_CFG, key: value})
