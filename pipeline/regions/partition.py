"""Overlapping masks -> at most K disjoint regions plus one "rest" region.

Pure functions on boolean masks; no model, no files.

Each pixel covered by several masks is given to one of them by a priority order:

- ``"smaller_on_top"`` (default): the smallest covering mask wins; as if the masks were
  painted from largest to smallest, each new one over the last (segment-anything's own
  way of showing automatic masks). Parts keep their pixels inside the whole they belong
  to, and a mask covering (almost) the whole image keeps only what nothing else covers.
- ``"larger_wins"``: the largest covering mask wins (a pixel keeps the first mask that
  claims it when painting from largest to smallest). Objects stay whole, but their parts
  vanish, and one whole-image mask swallows everything.

Ties in area go to the higher predicted IoU, then to the lower mask index. After that
a region owns only the pixels it won; regions owning less than ``min_area_frac`` of the
image are dropped, the ``max_regions`` (K) largest by owned area are kept, in that order,
as ids ``0..n-1``; every other pixel goes to the rest region, id K.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OVERLAP_RULES = ("smaller_on_top", "larger_wins")


@dataclass(frozen=True)
class Region:
    """One region of a partition.

    ``region_id``: slot in ``[0, K]``; K is the rest region. ``source``: index of the
    input mask the region came from (None for the rest). ``pixels``: owned pixel count.
    ``area_frac``: ``pixels / (H * W)`` in ``(0, 1]``. ``bbox``: ``(x, y, w, h)`` in
    pixels of the owned pixels.
    """

    region_id: int
    source: int | None
    pixels: int
    area_frac: float
    bbox: tuple[int, int, int, int]


@dataclass(frozen=True)
class Partition:
    """``labels``: ``int32 [H, W]``, every pixel's region id (``0..n-1`` or ``rest_id``).
    ``regions``: the SAM regions in order (largest owned area first), then the rest
    region if any pixel is left over. ``rest_id`` = K."""

    labels: np.ndarray
    regions: list[Region]
    rest_id: int

    def mask(self, region_id: int) -> np.ndarray:
        """``bool [H, W]`` pixels of one region."""
        return self.labels == region_id


def bbox_xywh(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` in pixels of the True pixels of ``bool [H, W]``; zeros if none."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return (0, 0, 0, 0)
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    return (x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def priority_order(areas: Sequence[int], scores: Sequence[float], rule: str) -> np.ndarray:
    """Mask indices, the one that wins a contested pixel first.

    ``areas``: pixel counts ``[N]``; ``scores``: predicted IoU ``[N]``; ``rule``: one of
    ``OVERLAP_RULES``. Returns ``int64 [N]``.
    """
    if rule not in OVERLAP_RULES:
        raise ValueError(f"unknown overlap rule '{rule}' (known: {', '.join(OVERLAP_RULES)})")
    area = np.asarray(areas, np.int64)
    score = np.asarray(scores, np.float64)
    index = np.arange(area.size)
    primary = area if rule == "smaller_on_top" else -area
    # np.lexsort sorts by the last key first
    return np.lexsort((index, -score, primary)).astype(np.int64)


def partition_masks(
    masks: Sequence[np.ndarray],
    scores: Sequence[float],
    shape: tuple[int, int],
    max_regions: int,
    min_area_frac: float,
    rule: str = "smaller_on_top",
) -> Partition:
    """Partition an image of ``shape`` ``(H, W)`` by overlapping ``masks``.

    ``masks``: N arrays ``[H, W]``, nonzero = inside (N may be 0); ``scores``: their
    predicted IoU ``[N]``, used to break ties in area; ``max_regions``: K >= 0;
    ``min_area_frac``: in ``[0, 1]``, the smallest owned share of the image a region may
    have (regions owning no pixel are always dropped); ``rule``: see the module docstring.
    """
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image shape must be positive, got {shape}")
    if max_regions < 0:
        raise ValueError(f"max_regions must be >= 0, got {max_regions}")
    if not 0.0 <= min_area_frac <= 1.0:
        raise ValueError(f"min_area_frac must be in [0, 1], got {min_area_frac}")
    if len(scores) != len(masks):
        raise ValueError(f"{len(masks)} masks but {len(scores)} scores")
    for i, m in enumerate(masks):
        if m.shape != (h, w):
            raise ValueError(f"mask {i} has shape {m.shape}, expected {(h, w)}")

    total = h * w
    n_masks = len(masks)
    areas = [int(np.count_nonzero(m)) for m in masks]
    order = priority_order(areas, scores, rule)
    rank = np.empty(n_masks, np.int64)
    rank[order] = np.arange(n_masks)

    # paint the lowest priority first, each mask over the last: the highest wins
    owner = np.full((h, w), -1, np.int32)  # index of the mask owning each pixel
    for i in order[::-1]:
        owner[np.asarray(masks[i], dtype=bool)] = i
    owned = np.bincount(owner[owner >= 0], minlength=n_masks)

    min_pixels = max(1, min_area_frac * total)
    candidates = [i for i in range(n_masks) if owned[i] >= min_pixels]
    candidates.sort(key=lambda i: (-owned[i], rank[i]))
    kept = candidates[:max_regions]

    # owner + 1 indexes this table: unowned pixels (-1) and dropped masks -> rest id K
    to_id = np.full(n_masks + 1, max_regions, np.int32)
    to_id[np.asarray(kept, np.int64) + 1] = np.arange(len(kept), dtype=np.int32)
    labels = to_id[owner + 1]

    regions = []
    for region_id, source in enumerate(kept):
        mask = labels == region_id
        pixels = int(owned[source])
        regions.append(Region(region_id, int(source), pixels, pixels / total, bbox_xywh(mask)))
    rest = labels == max_regions
    rest_pixels = int(np.count_nonzero(rest))
    if rest_pixels:
        regions.append(Region(max_regions, None, rest_pixels, rest_pixels / total, bbox_xywh(rest)))
    return Partition(labels=labels, regions=regions, rest_id=max_regions)


def encode_rle(mask: np.ndarray) -> str:
    """COCO compressed RLE ``counts`` of ``bool [H, W]`` as a utf-8 string."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return rle["counts"].decode("utf-8")


def decode_rle(counts: str, height: int, width: int) -> np.ndarray:
    """``bool [height, width]`` from a COCO compressed RLE ``counts`` string."""
    from pycocotools import mask as mask_utils

    rle = {"size": [int(height), int(width)], "counts": counts.encode("utf-8")}
    return mask_utils.decode(rle).astype(bool)
