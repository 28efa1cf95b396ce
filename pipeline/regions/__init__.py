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
# SAM 2.1 (the optional `sam2` package): regions.model -> the published checkpoint file
SAM2_CHECKPOINTS = {
    "sam2.1_hiera_t": "sam2.1_hiera_tiny.pt",
    "sam2.1_hiera_s": "sam2.1_hiera_small.pt",
    "sam2.1_hiera_b+": "sam2.1_hiera_base_plus.pt",
    "sam2.1_hiera_l": "sam2.1_hiera_large.pt",
}
TINY_SAM2 = "tiny-sam2.1"  # SAM 2.1 at toy size from the package's classes, seeded random
SAM2_MODELS = (TINY_SAM2, *SAM2_CHECKPOINTS)
SAM_MODELS = ("tiny", *SAM_CHECKPOINTS, *SAM2_MODELS)

__all__ = [
    "OVERLAP_RULES",
    "SAM2_CHECKPOINTS",
    "SAM2_MODELS",
    "SAM_CHECKPOINTS",
    "SAM_MODELS",
    "TINY_SAM2",
    "Partition",
    "Region",
    "bbox_xywh",
    "decode_rle",
    "encode_rle",
    "partition_masks",
    "priority_order",
]
