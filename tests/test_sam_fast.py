"""SAM's fused attention and encoder dtype (pipeline/models/sam_fast.py) and the
``regions.dtype`` setting: the same encoder output as stock in float32, the same masks
(mean matched IoU >= 0.98) in bfloat16, and the partition unchanged in float32."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from segment_anything.modeling.image_encoder import Attention

from benchmarks.sam import mask_agreement
from qfeat.cache.fingerprint import build_manifest
from qfeat.errors import OptionError
from qfeat.pipeline import precision
from qfeat.pipeline.config import resolve_config
from qfeat.pipeline.models.sam import MaskParams, build_sam, generate_batched, record_mask
from qfeat.pipeline.models.sam_fast import FusedAttention, fuse_attention, speed_up
from qfeat.pipeline.stages import get_stage, stage_settings

# float32 tolerance of the fused encoder vs stock (same math, another summation order)
FP32_ATOL = 1e-4
PARAMS = MaskParams(points_per_side=8, points_per_batch=64, pred_iou_thresh=0.0,
                    stability_score_thresh=0.0, box_nms_thresh=1.0)  # fmt: skip


@pytest.fixture(scope="module")
def stock_sam():
    """The tiny SAM with non-zero relative positions (they are zero-initialised), so the
    bias path is exercised."""
    sam = build_sam("tiny", seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for block in sam.image_encoder.blocks:
            block.attn.rel_pos_h.copy_(torch.randn(block.attn.rel_pos_h.shape, generator=gen))
            block.attn.rel_pos_w.copy_(torch.randn(block.attn.rel_pos_w.shape, generator=gen))
    return sam


@pytest.fixture(scope="module")
def images(demo_image_data):
    from qfeat.pipeline.images import open_image

    paths = sorted((demo_image_data / "images").glob("*.png"))[::80][:3]
    return [open_image(p) for p in paths]


def test_fused_encoder_matches_stock_in_float32(stock_sam):
    fused = copy.deepcopy(stock_sam)
    assert fuse_attention(fused) == len(fused.image_encoder.blocks)
    assert all(type(b.attn) is FusedAttention for b in fused.image_encoder.blocks)
    assert fused.state_dict().keys() == stock_sam.state_dict().keys()  # checkpoints load
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want, got = stock_sam.image_encoder(x), fused.image_encoder(x)
    assert want.abs().max() > 0.1  # not a degenerate comparison
    torch.testing.assert_close(got, want, atol=FP32_ATOL, rtol=0)
    assert fuse_attention(fused) == 0  # idempotent


def test_bf16_masks_match_stock_and_fp32_partition_is_unchanged(stock_sam, images):
    from qfeat.pipeline.stages.regions import RegionsStage

    bf16 = speed_up(copy.deepcopy(stock_sam), torch.bfloat16)
    fp32 = speed_up(copy.deepcopy(stock_sam), torch.float32)
    assert bf16.image_encoder.patch_embed.proj.weight.dtype == torch.bfloat16
    stock = generate_batched(stock_sam, images, PARAMS)
    fast = generate_batched(bf16, images, PARAMS)
    ious = [mask_agreement([record_mask(r) for r in a], [record_mask(r) for r in b])[0]
            for a, b in zip(stock, fast, strict=True)]  # fmt: skip
    assert sum(map(len, stock)) > 4 * len(images) and np.mean(ious) >= 0.98
    stage = RegionsStage(resolve_config("tiny", [], stage_settings())["regions"])
    for image, a, b in zip(images, stock, generate_batched(fp32, images, PARAMS), strict=True):
        want, got = stage.regions_row(image, a), stage.regions_row(image, b)
        for column in ("predicted_iou", "stability_score"):  # float rounding only
            pair = (np.array(r.pop(column), dtype=float) for r in (got, want))
            np.testing.assert_allclose(*pair, atol=1e-4)  # None (the rest region): NaN
        assert got == want  # the same regions, masks, boxes and areas


def test_regions_stage_runs_fused_attention_in_its_dtype():
    cfg = resolve_config("tiny", [], stage_settings())["regions"]
    assert cfg["dtype"] == "bfloat16"  # the default: bf16 where it runs in bf16 (CUDA)
    stage = get_stage("regions")(cfg, seed=0)
    stage.load()
    blocks = stage.model.image_encoder.blocks
    assert not any(type(b.attn) is Attention for b in blocks)
    want = precision.run_dtype("bfloat16", "cpu", "regions")
    assert stage.model.image_encoder.patch_embed.proj.weight.dtype == want


def test_regions_dtype_is_validated_and_enters_the_fingerprint():
    with pytest.raises(OptionError, match="regions.dtype"):
        resolve_config("tiny", ["regions.dtype=int8"], stage_settings())

    def fp(value: str) -> str:
        config = resolve_config("tiny", [f"regions.dtype={value}"], stage_settings())["regions"]
        return build_manifest(
            stage="regions", stage_version=1, config=config, model={"name": "tiny"},
            upstream={}, dataset={"adapter": "demo"}, item_ids=["a"], shard_size=1,
        )["fingerprint"]  # fmt: skip

    assert len({fp("float32"), fp("bfloat16"), fp("float16")}) == 3


def test_run_dtype_cuda_as_set_cpu_float32_unless_measured(monkeypatch):
    assert precision.run_dtype("float16", "cuda", "regions") == torch.float16
    assert precision.run_dtype("bfloat16", "cuda:1", "clip") == torch.bfloat16
    monkeypatch.setattr(precision, "CPU_BF16", frozenset())
    assert precision.run_dtype("bfloat16", "cpu", "regions") == torch.float32
    monkeypatch.setattr(precision, "CPU_BF16", frozenset({"regions"}))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.run_dtype("bfloat16", "cpu", "regions") == torch.bfloat16
    assert precision.run_dtype("float16", "cpu", "regions") == torch.float32
    assert precision.run_dtype("bfloat16", "cpu", "backbone") == torch.float32
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.run_dtype("bfloat16", "cpu", "regions") == torch.float32
