"""The partition of SAM's overlapping masks, on hand-made masks: disjoint regions that
cover the image, overlap rules, small regions into "rest", at most K kept."""

from __future__ import annotations

import numpy as np
import pytest

from qfeat.pipeline.regions import bbox_xywh, partition_masks, priority_order


def box(shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def check_partition(part, shape, k) -> None:
    """The invariants every partition satisfies."""
    assert part.labels.shape == shape and part.labels.dtype == np.int32 and part.rest_id == k
    ids = [r.region_id for r in part.regions]
    assert len(ids) <= k + 1 and set(np.unique(part.labels)) == set(ids)
    cover = sum(part.mask(i).astype(int) for i in ids)
    assert (cover == 1).all()
    np.testing.assert_allclose(sum(r.area_frac for r in part.regions), 1.0)
    for r in part.regions:
        mask = part.mask(r.region_id)
        assert r.pixels == mask.sum() and r.bbox == bbox_xywh(mask)
    if part.regions and part.regions[-1].source is None:
        assert part.regions[-1].region_id == k


def test_partition_smaller_masks_on_top():
    shape = (10, 10)
    big = box(shape, 0, 10, 0, 8)  # 80 px
    small = box(shape, 2, 5, 2, 5)  # 9 px, inside big
    part = partition_masks([big, small], [0.5, 0.5], shape, max_regions=4, min_area_frac=0.0)
    check_partition(part, shape, 4)
    got = [(r.region_id, r.source, r.pixels) for r in part.regions]
    assert got == [(0, 0, 71), (1, 1, 9), (4, None, 20)]
    assert part.regions[2].bbox == (8, 0, 2, 10)


def test_partition_larger_wins_rule():
    shape = (10, 10)
    masks = [box(shape, 2, 5, 2, 5), box(shape, 0, 10, 0, 8)]  # small inside big
    part = partition_masks(masks, [0.9, 0.1], shape, 4, 0.0, rule="larger_wins")
    check_partition(part, shape, 4)
    assert [(r.source, r.pixels) for r in part.regions] == [(1, 80), (None, 20)]


def test_partition_overlap_ties_go_to_higher_score_then_index():
    shape = (4, 6)
    a, b = box(shape, 0, 4, 0, 4), box(shape, 0, 4, 2, 6)  # same area, overlap cols 2-3
    part = partition_masks([a, b], [0.2, 0.8], shape, max_regions=2, min_area_frac=0.0)
    check_partition(part, shape, 2)
    assert part.labels[0, 2] == [r.region_id for r in part.regions if r.source == 1][0]
    assert list(priority_order([16, 16], [0.5, 0.5], "smaller_on_top")) == [0, 1]
    assert list(priority_order([5, 9, 5], [0.1, 0.9, 0.3], "smaller_on_top")) == [2, 0, 1]
    assert list(priority_order([5, 9, 5], [0.1, 0.9, 0.3], "larger_wins")) == [1, 2, 0]


def test_partition_drops_small_regions_into_rest():
    shape = (20, 20)
    masks = [box(shape, 0, 10, 0, 20), box(shape, 10, 20, 0, 19), box(shape, 15, 17, 19, 20)]
    # third mask: 2 px = 0.5 % of the image, under min_area_frac 1 %
    part = partition_masks(masks, [0.5] * 3, shape, max_regions=8, min_area_frac=0.01)
    check_partition(part, shape, 8)
    assert [(r.region_id, r.source) for r in part.regions] == [(0, 0), (1, 1), (8, None)]
    assert part.regions[-1].pixels == 10 and part.mask(8)[15, 19]


def test_partition_keeps_at_most_k_largest():
    shape = (8, 16)
    masks = [box(shape, 0, 8, 2 * i, 2 * i + 2) for i in range(8)]  # 8 disjoint columns
    masks[5] = box(shape, 0, 8, 10, 12) | box(shape, 0, 1, 12, 13)  # 17 px, largest
    masks[6] = box(shape, 0, 8, 12, 14) & ~box(shape, 0, 1, 12, 13)  # 15 px
    part = partition_masks(masks, [0.5] * 8, shape, max_regions=3, min_area_frac=0.0)
    check_partition(part, shape, 3)
    assert [r.source for r in part.regions] == [5, 0, 1, None]  # ties: lower index
    assert [r.region_id for r in part.regions] == [0, 1, 2, 3]
    assert part.regions[-1].area_frac == pytest.approx(1 - (17 + 16 + 16) / 128)


def test_partition_rest_region_is_there_when_pixels_are_left():
    part = partition_masks([], [], (5, 7), max_regions=8, min_area_frac=0.01)
    check_partition(part, (5, 7), 8)
    rest = part.regions[0]
    assert len(part.regions) == 1  # no masks: the whole image is the rest region
    assert (rest.region_id, rest.source, rest.area_frac, rest.bbox) == (8, None, 1.0, (0, 0, 7, 5))
    halves = [box((6, 6), 0, 3, 0, 6), box((6, 6), 3, 6, 0, 6)]
    part = partition_masks(halves, [0.5, 0.5], (6, 6), max_regions=2, min_area_frac=0.0)
    check_partition(part, (6, 6), 2)
    assert [r.region_id for r in part.regions] == [0, 1]  # full cover: no rest region


def test_partition_rejects_bad_arguments():
    shape = (4, 4)
    with pytest.raises(ValueError, match="shape"):
        partition_masks([np.zeros((3, 4), bool)], [0.5], shape, 2, 0.0)
    with pytest.raises(ValueError, match="scores"):
        partition_masks([np.zeros(shape, bool)], [], shape, 2, 0.0)
    with pytest.raises(ValueError, match="max_regions"):
        partition_masks([], [], shape, -1, 0.0)
    with pytest.raises(ValueError, match="overlap rule"):
        partition_masks([], [], shape, 2, 0.0, rule="by_colour")
