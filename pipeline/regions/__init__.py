"""Regions: SAM's overlapping masks turned into a partition of the image.

:mod:`qfeat.pipeline.regions.partition` holds the pure functions (partition, bounding boxes,
COCO RLE strings); the model side lives in :mod:`qfeat.pipeline.models.sam` and the cached
stage in :mod:`qfeat.pipeline.stages.regions`.
"""

from __future__ import annotations

from qfeat.pipeline.regions.partition import (
    OVERLAP_RULES,
    Partition,
    Region,
    bbox_xywh,
    decode_rle,
    encode_rle,
    partition_masks,
    priority_order,
)

# the published SAM checkpoints, by model name (for messages; never downloaded)
SAM_CHECKPOINTS = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}
SAM_MODELS = ("tiny", *SAM_CHECKPOINTS)

__all__ = [
    "OVERLAP_RULES",
    "SAM_CHECKPOINTS",
    "SAM_MODELS",
    "Partition",
    "Region",
    "bbox_xywh",
    "decode_rle",
    "encode_rle",
    "partition_masks",
    "priority_order",
]
