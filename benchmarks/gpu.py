"""GPU figures with real-size architectures and random weights (no network needed).

Sections (each a dict in ``benchmarks/results/gpu.json``):

- ``matmul``: the measured bf16 matmul ceiling (TFLOP/s, 8192^3 products);
- ``sam``: SAM ViT-H automatic masks at points_per_side 32 on generated 1024x768
  images, stock ``SamAutomaticMaskGenerator`` vs. qfeat's batched generation, with mask
  agreement (random weights: the IoU/stability filters are off, as in the tiny preset,
  so both produce many masks);
- ``clip``: PE-Core-L-14-336 vision tower frames/s in bf16, achieved TFLOP/s (FLOPs
  counted by ``torch.utils.flop_counter``) and the share of the matmul ceiling;
- ``describe``: a Qwen2.5-VL-7B-sized model (config written here) generating region
  descriptions through the describe stage's batched path, regions/s;
- ``scma``: one SCMA training step (K = 6, r = 128, batch 12 x 8 frames) on hidden
  states of PE-Core-L's size.

``--dry-run`` runs the same code with tiny sizes on the CPU (the test suite does, so
this script cannot rot); its numbers mean nothing. Run from a plain checkout plus the
wheels of any missing packages: ``python -m benchmarks.gpu``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import RESULTS, machine

# Qwen2.5-VL-7B-Instruct's published sizes (config.json of the release)
QWEN25_VL_7B = {
    "text": {"hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
             "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
             "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
    "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
               "out_hidden_size": 3584, "window_size": 112,
               "fullatt_block_indexes": [7, 15, 23, 31]},
}  # fmt: skip
QWEN_TINY = {
    "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
             "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    "vision": {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
               "out_hidden_size": 64, "window_size": 112, "fullatt_block_indexes": [1]},
}  # fmt: skip


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int = 1) -> float:
    """Seconds per call (after one warm-up call), synchronising CUDA."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def matmul_ceiling(device: torch.device, dtype: torch.dtype, n: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = _timed(lambda: a @ b, device, repeats=10 if device.type == "cuda" else 2)
    return 2 * n**3 / seconds / 1e12


def bench_sam(device: torch.device, dry: bool) -> dict[str, Any]:
    from segment_anything import sam_model_registry

    from benchmarks.sam import compare
    from qfeat.pipeline.models.sam import build_sam

    rng = np.random.default_rng(0)
    size = (96, 128) if dry else (768, 1024)
    images = []
    for _ in range(2 if dry else 8):
        img = np.zeros((*size, 3), np.uint8)
        for _ in range(6):  # rectangles of random colours: regions to find
            y, x = rng.integers(0, size[0] // 2), rng.integers(0, size[1] // 2)
            img[y : y + size[0] // 3, x : x + size[1] // 3] = rng.integers(0, 255, 3)
        images.append(img)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sam = build_sam("tiny") if dry else sam_model_registry["vit_h"](checkpoint=None)
    sam = sam.to(device).eval()
    thresholds = {"points_per_side": 4 if dry else 32, "pred_iou_thresh": 0.0,
                  "stability_score_thresh": 0.0, "box_nms_thresh": 0.7}  # fmt: skip
    return {"model": "tiny" if dry else "vit_h", **compare(sam, images, thresholds, batch=4)}


def bench_sam_speed(dry: bool) -> dict[str, Any]:
    """benchmarks/sam_speed.py at ViT-H / hiera-l size: encoder stock fp32 vs qfeat bf16
    + fused attention, automatic masks stock vs qfeat, SAM 2.1 hiera-l vs SAM ViT-H."""
    from benchmarks.sam_speed import bench

    return bench(dry, 4 if dry else 32, 1 if dry else 4, sam="vit_h", sam2="sam2.1_hiera_l")


def bench_clip(device: torch.device, dry: bool, ceiling: float) -> dict[str, Any]:
    from torch.utils.flop_counter import FlopCounterMode

    from qfeat.pipeline.models.clip_build import build_clip

    name = "tiny-pe" if dry else "PE-Core-L-14-336"
    model, pre = build_clip(name, "", seed=0)
    visual = model.visual.to(device).eval()
    batch = 4 if dry else 64
    pixels = torch.randn(batch, 3, *pre.size, device=device)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda")

    visual.requires_grad_(False)

    def forward():
        with torch.no_grad(), autocast:  # not inference_mode: FlopCounterMode needs views
            return visual(pixels)

    with FlopCounterMode(display=False) as counter:
        forward()
    flops = counter.get_total_flops()
    seconds = _timed(forward, device, repeats=2 if dry else 10)
    achieved = flops / seconds / 1e12
    return {"model": name, "batch": batch, "frames_per_s": batch / seconds,
            "tflops": achieved, "share_of_ceiling": achieved / ceiling}  # fmt: skip


def _qwen25_vl(sizes: dict[str, Any], tokenizer, device: torch.device, dtype: torch.dtype):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from qfeat.pipeline.models.vlm import SPECIAL_TOKENS

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(sizes["text"])
    rope = {"rope_type": "default", "rope_theta": text.pop("rope_theta"),
            "mrope_section": text.pop("mrope_section")}  # fmt: skip
    config = Qwen2_5_VLConfig(
        text_config={**text, "rope_parameters": rope, "bos_token_id": None,
                     "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]},
        vision_config={**sizes["vision"], "patch_size": 14, "spatial_merge_size": 2,
                       "temporal_patch_size": 2},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(0)
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    return model.eval()


def bench_describe(device: torch.device, dry: bool) -> dict[str, Any]:
    from PIL import Image
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    from qfeat.pipeline.models.vlm import CHAT_TEMPLATE, _tiny_tokenizer
    from qfeat.pipeline.stages.describe import DescribeStage

    tokenizer = _tiny_tokenizer()
    tokenizer.padding_side = "left"
    side = 56 if dry else 448  # region views up to the describe stage's default max_side
    pixels = {"min_pixels": 28 * 28, "max_pixels": side * side}
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels), tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels), chat_template=CHAT_TEMPLATE,
    )  # fmt: skip
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    new_tokens, regions, batch = (8, 4, 4) if dry else (96, 128, 32)
    stage = DescribeStage({"model": "bench", "max_new_tokens": new_tokens,
                           "min_new_tokens": new_tokens}, device=device.type)  # fmt: skip
    stage.processor = processor
    stage.model = _qwen25_vl(QWEN_TINY if dry else QWEN25_VL_7B, tokenizer, device, dtype)
    stage.torch = torch
    rng = np.random.default_rng(0)
    views = [
        Image.fromarray(rng.integers(0, 255, (side // 2, side // 2, 3), np.uint8))
        for _ in range(regions)
    ]

    def describe_all():
        for start in range(0, regions, batch):
            stage._generate(views[start : start + batch])

    seconds = _timed(describe_all, device)
    params = sum(p.numel() for p in stage.model.parameters())
    return {"parameters": params, "regions": regions, "batch": batch, "new_tokens": new_tokens,
            "view": f"{side // 2}x{side // 2}", "regions_per_s": regions / seconds}  # fmt: skip


def bench_scma(device: torch.device, dry: bool) -> dict[str, Any]:
    from qfeat.pipeline.models.clip_build import build_clip
    from qfeat.pipeline.models.clip_split import hidden_width, num_tokens
    from qfeat.trainers.losses import combined
    from qfeat.trainers.scma import QCLIP
    from qfeat.trainers.scma_train import tokenizer_for

    name = "tiny-pe" if dry else "PE-Core-L-14-336"
    k, r, b, t = (2, 8, 2, 2) if dry else (6, 128, 12, 8)
    clip, _ = build_clip(name, "", seed=0)
    model = QCLIP(clip, tokenizer_for(name), k=k, r=r).to(device)
    hidden = torch.randn(b, t, num_tokens(clip), hidden_width(clip), device=device)
    mos = torch.rand(b, device=device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss_fn = combined({"plcc": 1.0, "rank": 0.3})
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda")

    def step():
        with autocast:
            loss = loss_fn(model.score(model.video_from_hidden(hidden)).float(), mos)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = _timed(step, device, repeats=2 if dry else 10)
    return {"model": name, "k": k, "r": r, "batch": f"{b}x{t}", "step_s": seconds,
            "trainable_params": model.trainable_parameters(),
            "videos_per_s": b / seconds}  # fmt: skip


def run(dry: bool) -> dict[str, Any]:
    device = torch.device("cuda" if torch.cuda.is_available() and not dry else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    ceiling = matmul_ceiling(device, dtype, 256 if dry else 8192)
    out: dict[str, Any] = {"machine": machine(), "dry_run": dry, "device": str(device),
                           "matmul": {"dtype": str(dtype), "tflops": ceiling}}  # fmt: skip
    for name, fn in (
        ("sam", lambda: bench_sam(device, dry)),
        ("sam_speed", lambda: bench_sam_speed(dry)),
        ("clip", lambda: bench_clip(device, dry, ceiling)),
        ("describe", lambda: bench_describe(device, dry)),
        ("scma", lambda: bench_scma(device, dry)),
    ):
        out[name] = fn()
        print(name, json.dumps(out[name], default=str))
        if device.type == "cuda":
            out[name]["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu.json")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --dry-run, or on a GPU machine")
    result = run(args.dry_run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
