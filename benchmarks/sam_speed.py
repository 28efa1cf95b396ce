"""SAM at real ViT-B size (seeded random weights) on this machine: stock vs qfeat, and
SAM 2.1 hiera-t vs SAM ViT-B.

- ``encoder``: the image encoder on one 1024x1024 input, stock float32 vs qfeat's fused
  attention in float32 (max abs difference: the float32 tolerance at real size) and in
  bfloat16 (qfeat on CUDA, and on CPUs where ``pipeline/precision.CPU_BF16`` enables it);
  ``sam_encoder_stock_vs_qfeat_bf16`` = stock seconds / qfeat bf16 seconds;
- ``masks``: whole automatic masks per generated 768x1024 image, stock
  ``SamAutomaticMaskGenerator`` (float32, stock attention) vs qfeat's regions path
  (batched encoder, fused attention, bf16 encoder), with the mean matched mask IoU;
- ``sam2``: SAM 2.1 hiera-t's own automatic mask generator vs stock SAM ViT-B, the same
  images and settings. Random weights: the IoU/stability filters are off (as in the
  tiny preset); ``--points`` per side (default 16) keeps a CPU run short.
``--dry-run``: the toy models (tiny, tiny-sam2.1) on small images.
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from typing import Any

import numpy as np
import torch

from benchmarks.common import options, record

log = logging.getLogger(__name__)


def images(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        img = np.zeros((*size, 3), np.uint8)
        for _ in range(6):  # rectangles of random colours: regions to find
            y, x = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
            img[y : y + size[0] // 3, x : x + size[1] // 3] = rng.integers(0, 255, 3)
        out.append(img)
    return out


def timed(fn, repeats: int = 1) -> tuple[Any, float]:
    """``(result, seconds per call)``; on CUDA after one warm-up call (first-call costs:
    kernels, allocator), synchronising. On the CPU at real size a call takes seconds and
    is timed cold."""
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else lambda: None
    if cuda:
        fn()
        sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    sync()
    return out, (time.perf_counter() - t0) / repeats


def bench_encoder(stock, fp32, bf16) -> dict[str, float]:
    side = stock.image_encoder.img_size
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    x = x.to(stock.device)
    with torch.inference_mode():
        want, t_stock = timed(lambda: stock.image_encoder(x))
        got, t_fp32 = timed(lambda: fp32.image_encoder(x))
        low, t_bf16 = timed(lambda: bf16.image_encoder(x))
    return {
        "stock_fp32_s": t_stock,
        "qfeat_fp32_s": t_fp32,
        "qfeat_bf16_s": t_bf16,
        "fp32_max_abs_diff": float((got - want).abs().max()),
        "bf16_max_abs_diff": float((low - want).abs().max()),
        "output_max_abs": float(want.abs().max()),
        "sam_encoder_stock_vs_qfeat_fp32": t_stock / t_fp32,
        "sam_encoder_stock_vs_qfeat_bf16": t_stock / t_bf16,
    }


def bench(
    dry: bool, points: int, n_images: int, *, sam: str = "vit_b", sam2: str = "sam2.1_hiera_t"
) -> dict[str, Any]:
    """The three comparisons with SAM ``sam`` and SAM 2.1 ``sam2`` (seeded random) on
    CUDA when there is one, else the CPU (``dry``: the toy models on the CPU)."""
    from benchmarks.sam import mask_agreement
    from qfeat.pipeline.models.sam import MaskParams, build_sam, generate_batched, record_mask
    from qfeat.pipeline.models.sam2_build import build_sam2, generate, mask_generator
    from qfeat.pipeline.models.sam_fast import speed_up

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if dry:
            stock = build_sam("tiny", seed=0)
        else:
            from segment_anything import sam_model_registry

            stock = sam_model_registry[sam](checkpoint=None).eval()
        model2 = build_sam2("tiny-sam2.1" if dry else sam2, "random", seed=0)
    device = torch.device("cuda" if torch.cuda.is_available() and not dry else "cpu")
    stock, model2 = stock.to(device), model2.to(device)
    fp32 = speed_up(copy.deepcopy(stock), torch.float32)
    bf16 = speed_up(copy.deepcopy(stock), torch.bfloat16)
    out: dict[str, Any] = {"model": "tiny" if dry else sam, "sam2_model": sam2,
                           "points_per_side": points, "device": str(device)}  # fmt: skip
    out["encoder"] = bench_encoder(stock, fp32, bf16)
    log.info("encoder: %s", out["encoder"])
    ims = images(n_images, (96, 128) if dry else (768, 1024))
    params = MaskParams(points_per_side=points, points_per_batch=64, pred_iou_thresh=0.0,
                        stability_score_thresh=0.0, box_nms_thresh=0.7)  # fmt: skip
    from segment_anything import SamAutomaticMaskGenerator

    def stock_masks():
        with torch.inference_mode():
            gen = SamAutomaticMaskGenerator(stock, **params.kwargs())
            return [[record_mask(r) for r in gen.generate(im)] for im in ims]

    def qfeat_masks():
        return [[record_mask(r) for r in recs] for recs in generate_batched(bf16, ims, params)]

    def sam2_masks():
        gen = mask_generator(model2, params)
        return [[record_mask(r) for r in generate(gen, im, torch.float32)] for im in ims]

    a, t_stock = timed(stock_masks)
    b, t_qfeat = timed(qfeat_masks)
    log.info("masks: stock %.2f s, qfeat %.2f s", t_stock, t_qfeat)
    c, t_sam2 = timed(sam2_masks)
    ious = [mask_agreement(x, y)[0] for x, y in zip(a, b, strict=True)]
    n = len(ims)
    out["masks"] = {"images": n, "stock_s_per_image": t_stock / n,
                    "qfeat_s_per_image": t_qfeat / n, "masks_stock": sum(map(len, a)),
                    "masks_qfeat": sum(map(len, b)), "mean_matched_iou": float(np.mean(ious)),
                    "sam_masks_stock_vs_qfeat": t_stock / t_qfeat}  # fmt: skip
    out["sam2"] = {"sam2_s_per_image": t_sam2 / n, "sam_s_per_image": t_stock / n,
                   "masks_sam2": sum(map(len, c)),
                   "sam_vs_sam2_1": t_stock / t_sam2}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--images", type=int, default=1)
    args = options(parser, argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    r = bench(args.dry_run, 4 if args.dry_run else args.points, args.images)
    record("sam_speed", r)
    record("ratios", {k: round(v, 2) for k, v in (
        ("sam_encoder_stock_vs_qfeat_bf16", r["encoder"]["sam_encoder_stock_vs_qfeat_bf16"]),
        ("sam_masks_stock_vs_qfeat", r["masks"]["sam_masks_stock_vs_qfeat"]),
        ("sam_vit_b_vs_sam2_1_t", r["sam2"]["sam_vs_sam2_1"]))})  # fmt: skip
    for section in ("encoder", "masks", "sam2"):
        print(section, {k: round(v, 4) if isinstance(v, float) else v
                        for k, v in r[section].items()})  # fmt: skip


if __name__ == "__main__":
    main()
