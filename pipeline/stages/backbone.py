"""``backbone``: a frozen feature map per image, cached once for the RSA head.

HDF5 array ``features`` ``[items, C, h, w]`` fp16. Images are read by
:func:`qfeat.pipeline.images.open_image` (every format and mode becomes 8-bit RGB, EXIF
applied), squashed to the backbone's fixed square input size (``backbone.input_size``;
``clip:`` backbones use their model's own size) and normalised with the backbone's
mean/std. Columns: ``width``, ``height`` (the image size after EXIF orientation).
The registry of backbones is :mod:`qfeat.pipeline.models.backbones`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from qfeat.cache.fingerprint import model_identity
from qfeat.errors import DatasetError, ItemError
from qfeat.pipeline.images import open_image
from qfeat.pipeline.models.source import parse_source, require_plain_weights
from qfeat.pipeline.models.weights_facts import BackboneWeights
from qfeat.pipeline.stages.base import NO_UPSTREAM, Stage, Upstream
from qfeat.pipeline.stages.settings import BackboneSettings

BATCH = 16
MAX_SIDE = 4096  # decode-time bound for huge images (JPEG draft); then squashed


def squash_normalise(rgb: np.ndarray, size: int, mean, std) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> float32 ``[3, size, size]``, bicubic, ``(x/255 - mean)/std``."""
    from PIL import Image

    img = Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC)
    x = np.asarray(img, np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x.transpose(2, 0, 1)


class BackboneStage(Stage):
    name = "backbone"
    help = "a frozen backbone's feature map per image"
    settings = BackboneSettings
    weights_setting = "weights"
    weights = BackboneWeights()
    version = 1
    modality = "image"
    arrays = ("features",)

    @classmethod
    def constants(cls) -> dict[str, Any]:
        return {"max_side": MAX_SIDE}

    def model_identity(self) -> dict[str, Any]:
        name, weights = self.cfg["model"], self.cfg["weights"]
        if name == "tiny":
            from qfeat.pipeline.models.backbones import tiny_architecture

            return model_identity("tiny-resnet-layer1", seed=self.seed, arch=tiny_architecture())
        if weights == "random" or (not weights and name.startswith("clip:tiny")):
            if name.startswith("clip:"):  # the clip towers' identity, toy architecture included
                from qfeat.pipeline.models.clip_build import random_identity

                return {**random_identity(name.removeprefix("clip:"), self.seed), "name": name}
            return model_identity(name, seed=self.seed, init="random")
        return model_identity(name, weights or None)

    def check(self) -> None:
        from qfeat.pipeline.models.backbones import BUILDERS, FIXED, PREFIXES, needs_weights

        name, weights = self.cfg["model"], self.cfg["weights"]
        if name not in FIXED and not name.startswith(PREFIXES):
            raise DatasetError(
                f"unknown backbone '{name}' (known: {', '.join(BUILDERS)}); "
                "pass --set backbone.model=..."
            )
        if needs_weights(name, weights):
            raise DatasetError(
                f"backbone {name} weights not found at '{weights}'; pass "
                "--set backbone.weights=/path/to/weights (or set backbone.weights in the "
                "preset; =random for seeded random weights)"
            )
        if parse_source(weights).kind == "file":
            require_plain_weights(Path(weights), "backbone.weights")

    def load(self) -> None:
        import torch

        from qfeat.pipeline.models.backbones import build_backbone

        self.backbone = build_backbone(
            self.cfg["model"], self.cfg["weights"], self.seed, self.cfg["input_size"]
        )
        self.model = self.backbone.module.to(self.device)
        self.torch = torch

    def schema(self) -> pa.Schema:
        return pa.schema([("width", pa.int32()), ("height", pa.int32())])

    def array_shape(self, name: str, upstream: Upstream) -> tuple[int, ...]:
        return (self.backbone.channels, *self.backbone.grid)  # probed by build_backbone

    def process_shard(self, items: list[dict[str, Any]], upstream: Upstream = NO_UPSTREAM):
        bb = self.backbone
        results: list[dict[str, Any]] = []
        pixels: list[tuple[int, np.ndarray]] = []
        for i, item in enumerate(items):
            try:
                rgb = open_image(Path(item["path"]), MAX_SIDE)
            except ItemError as exc:
                results.append({"status": exc.kind, "error": str(exc)})
                continue
            h, w = rgb.shape[:2]
            results.append({"status": "ok", "error": None, "width": w, "height": h})
            pixels.append((i, squash_normalise(rgb, bb.input_size, bb.mean, bb.std)))
        torch = self.torch
        for start in range(0, len(pixels), BATCH):
            chunk = pixels[start : start + BATCH]
            batch = torch.from_numpy(np.stack([x for _, x in chunk])).to(self.device)
            with torch.inference_mode():
                feats = self.model(batch).float().cpu().numpy()
            for (i, _), f in zip(chunk, feats, strict=True):
                results[i]["features"] = f
        return self.assemble(items, results, upstream)
