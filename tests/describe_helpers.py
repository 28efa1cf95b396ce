"""Shared inputs of the describe tests: a toy picture, hand-made regions, settings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from qfeat.pipeline.stages.base import Upstream

K = 8  # max_regions of the fake regions stage: the rest region's id
REGIONS_CFG = {"max_side": 1024, "max_regions": K}  # the fake regions stage's settings
TINY_CFG = {
    "model": "tiny",
    "dtype": "float32",
    "mode": "generate",
    "max_new_tokens": 8,
    "batch_size": 32,
}
REGIONS_SCHEMA = pa.schema(
    [
        ("status", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("region_id", pa.list_(pa.int32())),
        ("rle", pa.list_(pa.string())),
        ("bbox", pa.list_(pa.list_(pa.int32()))),
        ("area_frac", pa.list_(pa.float32())),
    ]
)


def upstream(rows: dict[str, dict]) -> Upstream:
    """The fake regions stage's ``rows`` (item_id -> row) as a worker hands them over."""
    return Upstream({"regions": rows}, {"regions": REGIONS_CFG})


def picture(seed: int, height: int = 72, width: int = 96) -> np.ndarray:
    """``uint8 [H, W, 3]``: a colour gradient with a dark disc and a bright bar."""
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    rng = np.random.default_rng(seed)
    img = np.stack([x, y, 1 - x * y], -1) * 200 + rng.normal(0, 8, (height, width, 3))
    img[(x - 0.7) ** 2 + (y - 0.6) ** 2 < 0.04] = (20, 30, 40)
    img[int(height * 0.1) : int(height * 0.25), int(width * 0.05) : int(width * 0.6)] = 240
    return np.clip(img, 0, 255).astype(np.uint8)


def region_masks(height: int, width: int) -> list[np.ndarray]:
    """Three hand-made regions (a wide bar, a disc, a small square) and the rest."""
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    bar = (y >= 0.1) & (y < 0.25) & (x >= 0.05) & (x < 0.6)
    disc = ((x - 0.7) ** 2 + (y - 0.6) ** 2 < 0.04) & ~bar
    square = (x >= 0.05) & (x < 0.17) & (y >= 0.4) & (y < 0.56)
    return [bar, disc, square, ~(bar | disc | square)]


def regions_row(height: int, width: int) -> dict:
    """A regions row as the worker hands it over (through pandas: numpy list cells)."""
    from pycocotools import mask as mask_utils

    masks = region_masks(height, width)
    rles = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in masks]
    row = {
        "status": "ok",
        "width": width,
        "height": height,
        "region_id": [0, 1, 2, K],
        "rle": [r["counts"].decode() for r in rles],
        "bbox": [[int(v) for v in mask_utils.toBbox(r)] for r in rles],
        "area_frac": [float(m.mean()) for m in masks],
    }
    return pa.Table.from_pylist([row], REGIONS_SCHEMA).to_pandas().to_dict("records")[0]
