"""bf16 vs float32 on this CPU for the regions, clip and backbone stages' models.

The decision behind ``pipeline/precision.CPU_BF16``: a stage runs bf16 on the CPU only
where this measures it faster with equal results. Per model (seeded random weights,
real sizes): forward seconds in float32 and with the weights in bfloat16, and the
largest difference relative to the float32 output's largest magnitude. Models: SAM
ViT-B's image encoder with qfeat's fused attention (regions, 1024x1024), the
ViT-B-16 vision tower (clip, 8 frames at 224x224), ResNet-50 (backbone, 4 images at
384x384). ``native_bf16``: whether the CPU reports AVX512-BF16 / AMX-BF16.
``--dry-run``: the toy models.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import torch

from benchmarks.common import options, record
from benchmarks.sam_speed import timed


def models(dry: bool) -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    import open_clip

    from qfeat.pipeline.models.backbones import build_backbone
    from qfeat.pipeline.models.sam import build_sam
    from qfeat.pipeline.models.sam_fast import fuse_attention

    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if dry:
            sam = build_sam("tiny")
        else:
            from segment_anything import sam_model_registry

            sam = sam_model_registry["vit_b"](checkpoint=None)
        fuse_attention(sam)
        if dry:
            from qfeat.pipeline.models.clip_build import build_clip

            clip = build_clip("tiny")[0].visual
        else:
            clip = open_clip.create_model("ViT-B-16").visual
        backbone = build_backbone("tiny" if dry else "resnet50", "random", 0, 64 if dry else 384)
    side = sam.image_encoder.img_size
    clip_side = (32, 32) if dry else (224, 224)
    size, frames = (64, 2) if dry else (384, 4)
    return {
        "regions": (sam.image_encoder.eval(), torch.randn(1, 3, side, side, generator=gen)),
        "clip": (clip.eval(), torch.randn(2 if dry else 8, 3, *clip_side, generator=gen)),
        "backbone": (backbone.module.eval(), torch.randn(frames, 3, size, size, generator=gen)),
    }


def compare(module: torch.nn.Module, x: torch.Tensor) -> dict[str, float]:
    low = copy.deepcopy(module).to(torch.bfloat16)
    with torch.inference_mode():
        want, t32 = timed(lambda: module(x))
        got, t16 = timed(lambda: low(x.to(torch.bfloat16)))
    want = want if isinstance(want, torch.Tensor) else want[0]
    got = (got if isinstance(got, torch.Tensor) else got[0]).float()
    return {"fp32_s": t32, "bf16_s": t16, "fp32_vs_bf16": t32 / t16,
            "max_rel_diff": float((got - want).abs().max() / want.abs().max())}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from qfeat.pipeline.precision import cpu_has_native_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = options(parser, argv)
    out: dict[str, Any] = {"native_bf16": cpu_has_native_bf16()}
    for stage, (module, x) in models(args.dry_run).items():
        out[stage] = compare(module, x)
        print(stage, {k: round(v, 4) for k, v in out[stage].items()})
    record("cpu_bf16", out)


if __name__ == "__main__":
    main()
