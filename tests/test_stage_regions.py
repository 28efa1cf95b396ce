"""The regions stage: tiny SAM masks -> a partition of at most K regions plus "rest".

Golden data: ``tests/golden/regions_tiny.json`` holds the seeded tiny SAM's regions of
one generated image. Regenerate it after an intended change with
``QFEAT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_stage_regions.py -k golden``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from qfeat.errors import DatasetError, OptionError
from qfeat.pipeline.config import load_preset
from qfeat.pipeline.models import sam as sam_module
from qfeat.pipeline.models.sam import MaskParams, build_sam, generate_batched, generate_stock
from qfeat.pipeline.regions import (
    bbox_xywh,
    decode_rle,
    encode_rle,
)
from qfeat.pipeline.stages.regions import RegionsStage
from tests.fixtures.media import bomb_png

GOLDEN = Path(__file__).parent / "golden" / "regions_tiny.json"
I32, F32 = pa.int32(), pa.float32()
SCHEMA = {"width": I32, "height": I32, "region_id": pa.list_(I32), "rle": pa.list_(pa.string())}
SCHEMA |= {"bbox": pa.list_(pa.list_(I32)), "area_frac": pa.list_(F32)}
SCHEMA |= {"predicted_iou": pa.list_(F32), "stability_score": pa.list_(F32)}


# -- synthetic images -----------------------------------------------------------------
def synthetic(kind: str, width: int, height: int, seed: int = 0) -> np.ndarray:
    """``uint8 [height, width, 3]``: flat shapes, stripes or soft blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    if kind == "shapes":
        img[:] = (40, 90, 160)
        img[: height // 2, : width // 3] = (220, 200, 40)
        disc = (xx - 0.65 * width) ** 2 + (yy - 0.6 * height) ** 2 < (0.2 * height) ** 2
        img[disc] = (200, 30, 30)
        img[int(0.75 * height) :, int(0.1 * width) : int(0.4 * width)] = (20, 160, 60)
    elif kind == "stripes":
        band = ((xx + 0.5 * yy) // max(4, width // 10)) % 2
        img[:] = np.where(band[..., None] > 0, (240, 240, 240), (30, 30, 30))
    else:  # blobs
        for _ in range(5):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            r = rng.uniform(0.1, 0.3) * min(width, height)
            weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            img += weight[..., None] * rng.uniform(60, 255, 3)
    # no pixel noise: random-weight SAM turns noise into speckled masks (slow to encode)
    return np.clip(img, 0, 255).astype(np.uint8)


def save_png(path: Path, image: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


IMAGES = [("shapes", 128, 128), ("stripes", 200, 120), ("blobs", 128, 128), ("blobs", 96, 160)]


@pytest.fixture(scope="module")
def tiny_cfg() -> dict:
    return dict(load_preset("tiny")["regions"])


@pytest.fixture(scope="module")
def stage(tiny_cfg) -> RegionsStage:
    torch.set_num_threads(2)
    s = RegionsStage(tiny_cfg, seed=0)
    s.check()
    s.load()
    return s


@pytest.fixture(scope="module")
def good_items(tmp_path_factory) -> list[dict]:
    root = tmp_path_factory.mktemp("regions_images")
    paths = [
        save_png(root / f"{i}_{kind}_{w}x{h}.png", synthetic(kind, w, h, seed=i))
        for i, (kind, w, h) in enumerate(IMAGES)
    ]
    return [{"item_id": p.name, "path": str(p)} for p in paths]


@pytest.fixture(scope="module")
def good_table(stage, good_items) -> pa.Table:
    table, arrays = stage.process_shard(good_items)
    assert arrays == {}
    return table


@pytest.fixture(scope="module")
def good_rows(good_table) -> list[dict]:
    return good_table.to_pylist()


# -- the stage on real tiny-SAM output --------------------------------------------------
def test_output_schema_and_types(good_table, good_rows):
    assert good_table.column_names == ["item_id", "status", "error", *SCHEMA]
    for name, typ in SCHEMA.items():
        assert good_table.schema.field(name).type == typ, name
    assert [r["status"] for r in good_rows] == ["ok"] * len(IMAGES)
    for row, (_, w, h) in zip(good_rows, IMAGES, strict=True):
        assert (row["width"], row["height"]) == (w, h)
        n = len(row["region_id"])
        assert n >= 2  # random tiny SAM gives many masks (thresholds off)
        assert all(len(row[c]) == n for c in ("rle", "bbox", "area_frac", "predicted_iou"))


def test_regions_partition_the_image(tiny_cfg, good_rows):
    from pycocotools import mask as coco

    k = tiny_cfg["max_regions"]
    for row in good_rows:
        h, w, ids = row["height"], row["width"], row["region_id"]
        assert len(ids) <= k + 1 and all(0 <= i <= k for i in ids)
        sam_ids = [i for i in ids if i != k]
        assert sam_ids == list(range(len(sam_ids)))  # SAM regions first, ids 0..n-1
        # the contract: plain pycocotools decodes the strings
        masks = [coco.decode({"size": [h, w], "counts": c}).astype(bool) for c in row["rle"]]
        for m, c in zip(masks, row["rle"], strict=True):
            assert np.array_equal(m, decode_rle(c, h, w)) and encode_rle(m) == c
        cover = np.sum(masks, axis=0)
        assert cover.shape == (h, w) and (cover == 1).all()  # disjoint and covering
        np.testing.assert_allclose(sum(row["area_frac"]), 1.0, atol=1e-5)
        for j, (rid, mask, frac) in enumerate(zip(ids, masks, row["area_frac"], strict=True)):
            assert tuple(row["bbox"][j]) == bbox_xywh(mask)
            np.testing.assert_allclose(frac, mask.sum() / (h * w), rtol=1e-6)
            scores = (row["predicted_iou"][j], row["stability_score"][j])
            if rid == k:  # the rest region: no SAM scores
                assert scores == (None, None)
            else:
                assert None not in scores and frac >= tiny_cfg["min_area_frac"]
        assert k not in ids[:-1]  # the rest region comes last
        sam_fracs = [f for i, f in zip(ids, row["area_frac"], strict=True) if i != k]
        assert sam_fracs == sorted(sam_fracs, reverse=True)


def test_bad_files_become_error_rows(stage, good_items, tmp_path):
    png = Path(good_items[0]["path"]).read_bytes()
    (tmp_path / "corrupt.png").write_bytes(png[: len(png) // 3])
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("this is not a picture\n")
    bomb_png(tmp_path / "bomb.png")
    bad = ["corrupt.png", "garbage.png", "empty.jpg", "notes.jpg", "bomb.png", "missing.jpg"]
    items = [{"item_id": name, "path": str(tmp_path / name)} for name in bad]
    items = [good_items[0], *items, good_items[1]]
    rows = stage.process_shard(items)[0].to_pylist()
    assert rows[0]["status"] == rows[-1]["status"] == "ok"
    for row in rows[1:-1]:
        assert row["status"] != "ok" and row["error"], row
        assert row["region_id"] is None and row["rle"] is None
    status = {r["item_id"]: r["status"] for r in rows}
    assert (status["missing.jpg"], status["empty.jpg"]) == ("missing", "empty_file")
    assert status["notes.jpg"] == status["corrupt.png"] == "decode_error"
    assert status["bomb.png"] == "too_large"


def test_a_thin_image_gets_its_own_status(stage, good_items, tmp_path):
    """Issue 24.9: a 1x4000 PNG failed `regions` with the generic status `error`."""
    from PIL import Image

    Image.fromarray(np.full((1, 4000, 3), 128, np.uint8)).save(tmp_path / "thin.png")
    items = [good_items[0], {"item_id": "thin.png", "path": str(tmp_path / "thin.png")}]
    rows = stage.process_shard(items)[0].to_pylist()
    assert rows[0]["status"] == "ok"
    assert rows[1]["status"] == "unusable_size" and "too thin to segment" in rows[1]["error"]


@pytest.mark.parametrize("option", [{"batch_size": 3}, {"batched": False}], ids=str)
def test_batch_size_and_stock_generation_give_the_same_rows(
    tiny_cfg, good_items, good_rows, option
):
    s = RegionsStage({**tiny_cfg, **option}, seed=0)
    s.load()
    n = 2 if option.get("batched") is False else len(good_items)  # stock RLE is slow
    assert_rows_match(s.process_shard(good_items[:n])[0].to_pylist(), good_rows[:n])


def assert_rows_match(rows: list[dict], expected: list[dict], min_iou: float = 0.99) -> None:
    assert len(rows) == len(expected)
    for row, ref in zip(rows, expected, strict=True):
        assert row["region_id"] == ref["region_id"]
        h, w = row["height"], row["width"]
        for a, b in zip(row["rle"], ref["rle"], strict=True):
            assert mask_iou(decode_rle(a, h, w), decode_rle(b, h, w)) >= min_iou
        np.testing.assert_allclose(row["area_frac"], ref["area_frac"], atol=2e-3)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


# -- batched encoder == stock segment-anything ------------------------------------------
# the tiny preset; then IoU filtering and NMS switched on (stability is 0 at random weights)
@pytest.mark.parametrize("thresholds", [(0.0, 0.0, 1.0), (0.05, 0.0, 0.7)], ids=str)
def test_batched_generation_equals_stock(stage, thresholds):
    from segment_anything.utils.amg import rle_to_mask

    params = MaskParams(8, 64, *thresholds)  # pred_iou, stability, box_nms thresholds
    sizes = [("shapes", 96, 96), ("stripes", 120, 72), ("blobs", 64, 80)]  # stock is slow
    images = [synthetic(kind, w, h, seed=7 + i) for i, (kind, w, h) in enumerate(sizes)]
    batched = generate_batched(stage.model, images, params)
    for image, got in zip(images, batched, strict=True):
        want = generate_stock(stage.model, image, params)
        assert len(got) == len(want) > 0
        for a, b in zip(got, want, strict=True):
            ma, mb = sam_module.record_mask(a), sam_module.record_mask(b)
            assert ma.shape == image.shape[:2] and ma.dtype == bool and ma.sum() == a["area"]
            assert np.array_equal(mb, rle_to_mask(b["segmentation"]))  # our decoder == stock
            assert mask_iou(ma, mb) >= 0.99
            assert abs(a["predicted_iou"] - b["predicted_iou"]) < 1e-4
            assert abs(a["stability_score"] - b["stability_score"]) < 1e-3


def test_masks_to_rle_matches_segment_anything():
    from segment_anything.utils.amg import mask_to_rle_pytorch

    rng = np.random.default_rng(0)
    masks = torch.from_numpy(rng.random((6, 9, 7)) > 0.5)
    masks[0], masks[1], masks[2, 0, 0] = False, True, True  # empty, full, starts with 1
    ours, stock = sam_module.masks_to_rle(masks), mask_to_rle_pytorch(masks)
    assert [r["size"] for r in ours] == [r["size"] for r in stock]
    assert [list(r["counts"]) for r in ours] == [r["counts"] for r in stock]
    assert sam_module.masks_to_rle(torch.zeros((0, 9, 7), dtype=torch.bool)) == []


# -- golden regression --------------------------------------------------------------------
def test_golden_tiny_regions(stage, tmp_path):
    path = save_png(tmp_path / "golden.png", synthetic("shapes", 128, 128, seed=0))
    row = stage.process_shard([{"item_id": "golden", "path": str(path)}])[0].to_pylist()[0]
    got = {k: row[k] for k in ("width", "height", "region_id", "rle")}
    got |= {"regions": len(row["region_id"]), "area_frac": [round(f, 4) for f in row["area_frac"]]}
    if os.environ.get("QFEAT_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
        pytest.skip(f"wrote {GOLDEN}")
    want = json.loads(GOLDEN.read_text())
    assert got["regions"] == want["regions"] and got["region_id"] == want["region_id"]
    np.testing.assert_allclose(got["area_frac"], want["area_frac"], atol=2e-3)
    h, w = want["height"], want["width"]
    for a, b in zip(got["rle"], want["rle"], strict=True):
        # masks compared by overlap: exact RLE bytes may move a pixel with the BLAS build
        assert mask_iou(decode_rle(a, h, w), decode_rle(b, h, w)) >= 0.98


# -- checks, identity, model loading -------------------------------------------------------
def test_check_and_identity_name_the_checkpoint(tiny_cfg, tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(DatasetError) as err:
        RegionsStage({**tiny_cfg, "model": "vit_h", "checkpoint": str(missing)}).check()
    assert f"SAM checkpoint not found at '{missing}'" in str(err.value)
    assert "--set regions.checkpoint=/path/sam_vit_h_4b8939.pth" in str(err.value)
    with pytest.raises(DatasetError, match="--set regions.checkpoint="):
        RegionsStage({**tiny_cfg, "model": "vit_b", "checkpoint": ""}).check()
    # bad settings are usage errors as soon as the stage's settings are built
    with pytest.raises(OptionError, match="regions.model"):
        RegionsStage({**tiny_cfg, "model": "vit_x"})
    with pytest.raises(OptionError, match="regions.max_regions"):
        RegionsStage({**tiny_cfg, "max_regions": 0})
    RegionsStage(tiny_cfg).check()  # tiny needs no checkpoint
    from qfeat.pipeline.models import sam

    arch = sam.tiny_architecture()
    assert RegionsStage(tiny_cfg, seed=3).model_identity() == {
        "name": "tiny-sam",
        "seed": 3,
        "arch": arch,
    }
    (ckpt := tmp_path / "sam.pth").write_bytes(b"weights")
    ident = RegionsStage({**tiny_cfg, "model": "vit_l", "checkpoint": str(ckpt)}).model_identity()
    assert ident["name"] == "sam_vit_l" and len(ident["sha256"]) == 64


class Payload:
    """A class a checkpoint must never get to instantiate."""


def test_real_model_loads_checkpoint_safely(monkeypatch, tmp_path):
    """vit_* go through segment-anything's registry; weights load with weights_only."""
    built = []

    def fake_builder(checkpoint=None):  # a tiny architecture stands in for ViT-B
        built.append(checkpoint)
        return sam_module._tiny_sam()

    monkeypatch.setitem(sam_module.sam_model_registry, "vit_b", fake_builder)
    reference = build_sam("tiny", seed=5)
    torch.save(reference.state_dict(), ckpt := tmp_path / "sam_vit_b.pth")
    model = build_sam("vit_b", str(ckpt))
    assert built == [None] and not model.training
    want, got = reference.state_dict(), model.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    torch.save({"state": Payload()}, evil := tmp_path / "evil.pth")  # any pickled object
    with pytest.raises(Exception, match="(?i)weights_only|unpickl"):
        build_sam("vit_b", str(evil))
    with pytest.raises(DatasetError, match="regions.checkpoint"):
        build_sam("vit_b", str(tmp_path / "absent.pth"))
    # tiny: seeded random weights
    a, b, c = (build_sam("tiny", seed=s).image_encoder.patch_embed.proj.weight for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rows_survive_the_shard_writer(good_table, tmp_path):
    import pyarrow.parquet as pq

    from qfeat.cache.writer import ShardWriter

    ShardWriter(tmp_path, 0).write(good_table, {}, timings={})
    (file,) = tmp_path.rglob("*.parquet")
    back = pq.read_table(file)
    assert back.schema.field("bbox").type == pa.list_(pa.list_(pa.int32()))
    assert back.to_pylist() == good_table.to_pylist()


def test_tiny_sam_identity_follows_its_architecture(monkeypatch):
    """A changed toy SAM (here a deeper image encoder) gets a new identity, so its caches
    are recomputed, not reused; the seed alone would not tell them apart."""
    from qfeat.pipeline.models import sam

    before = sam.tiny_architecture()
    stock = sam._tiny_sam

    def deeper():
        model = stock()
        model.image_encoder.blocks.append(model.image_encoder.blocks[0])
        return model

    state = torch.random.get_rng_state()
    monkeypatch.setattr(sam, "_tiny_sam", deeper)
    sam.tiny_architecture.cache_clear()
    try:
        after = sam.tiny_architecture()
    finally:
        sam.tiny_architecture.cache_clear()
    assert after != before and len(after) == 12
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
