"""The regions stage's mask generation vs. segment-anything's stock generator.

Same model (the tiny seeded SAM of the tiny preset; ``benchmarks/gpu.py`` runs ViT-H),
same images (the first ``--images`` demo images), same parameters
(the tiny preset's ``[regions]`` section). Stock: ``SamAutomaticMaskGenerator(model,
...).generate(image)`` image by image with its default output (binary masks). qfeat:
:func:`qfeat.pipeline.models.sam.generate_batched` (one encoder pass per batch of images,
vectorised RLE, large point batches). ``sam_batched_vs_stock`` = stock time / qfeat
time. Agreement: per image, masks matched one to one by IoU (Hungarian), then the mean
IoU of matched pairs and the mask counts of both.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import demo_root, options, record

THRESHOLDS = ("points_per_side", "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh")


def mask_agreement(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, int]:
    """``(mean IoU of matched pairs, matched pairs)`` of two lists of bool masks."""
    from scipy.optimize import linear_sum_assignment

    if not a or not b:
        return (1.0 if not a and not b else 0.0), 0
    fa = np.stack([m.reshape(-1) for m in a]).astype(np.float32)
    fb = np.stack([m.reshape(-1) for m in b]).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    iou = inter / np.maximum(union, 1.0)
    rows, cols = linear_sum_assignment(-iou)
    return float(iou[rows, cols].mean()), len(rows)


def demo_images(n: int) -> list[np.ndarray]:
    from qfeat.pipeline.datasets import open_dataset
    from qfeat.pipeline.images import open_image

    with tempfile.TemporaryDirectory() as tmp:
        adapter = open_dataset("demo", demo_root(Path(tmp), "demo"))
        adapter.prepare()
        return [open_image(i.path) for i in adapter.list_items().items[:n]]


def compare(
    sam, images: list[np.ndarray], thresholds: dict[str, Any], batch: int
) -> dict[str, Any]:
    """Stock vs. qfeat mask generation with ``sam`` (any size, on its device)."""
    import torch
    from segment_anything import SamAutomaticMaskGenerator

    from qfeat.pipeline.models.sam import MaskParams, generate_batched, record_mask

    cuda = sam.device.type == "cuda"
    params = MaskParams(points_per_batch=256 if cuda else 64, **thresholds)

    def timed(fn):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if cuda:
            torch.cuda.synchronize()
        return out, time.perf_counter() - t0

    def stock():
        with torch.inference_mode():
            generator = SamAutomaticMaskGenerator(sam, **thresholds)
            return [[r["segmentation"] for r in generator.generate(im)] for im in images]

    def ours():
        masks = []
        for start in range(0, len(images), batch):
            for records in generate_batched(sam, images[start : start + batch], params):
                masks.append([record_mask(r) for r in records])
        return masks

    stock_masks, t_stock = timed(stock)
    our_masks, t_ours = timed(ours)
    ious = [mask_agreement(a, b)[0] for a, b in zip(stock_masks, our_masks, strict=True)]
    return {
        "images": len(images),
        "stock_s_per_image": t_stock / len(images),
        "qfeat_s_per_image": t_ours / len(images),
        "sam_batched_vs_stock": t_stock / t_ours,
        "mean_matched_iou": float(np.mean(ious)),
        "masks_stock": int(sum(len(m) for m in stock_masks)),
        "masks_qfeat": int(sum(len(m) for m in our_masks)),
    }


def run(images: list[np.ndarray]) -> dict[str, Any]:
    """The tiny preset's SAM and ``[regions]`` parameters on CPU."""
    from qfeat.pipeline.config import load_preset
    from qfeat.pipeline.models.sam import build_sam

    cfg = load_preset("tiny")["regions"]
    thresholds = {k: cfg[k] for k in THRESHOLDS}
    return compare(build_sam("tiny", seed=0), images, thresholds, int(cfg["batch_size"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    args = options(parser, argv)
    if args.dry_run:
        args.images = 2
    r = run(demo_images(args.images))
    record("ratios", {"sam_batched_vs_stock": round(r["sam_batched_vs_stock"], 2)})
    record("sam", {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()})
    print(f"tiny SAM on {r['images']} demo images (128x128), tiny preset parameters:")
    print(f"  stock SamAutomaticMaskGenerator: {r['stock_s_per_image']:.3f} s/image")
    print(f"  qfeat regions (batched):        {r['qfeat_s_per_image']:.3f} s/image")
    print(f"  masks: stock {r['masks_stock']}, qfeat {r['masks_qfeat']}, "
          f"mean IoU of matched masks {r['mean_matched_iou']:.4f}")  # fmt: skip
    print(f"sam_batched_vs_stock = {r['sam_batched_vs_stock']:.2f}")


if __name__ == "__main__":
    main()
