"""``backbone``: a frozen feature map per image, cached once for the RSA head.

HDF5 array ``features`` ``[items, C, h, w]`` fp16 at a fixed square input size
(``backbone.input_size``); images squashed to it and ImageNet-normalised. Columns:
``width``, ``height`` (the original image size).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cache.fingerprint import model_identity
from pipeline.datasets.base import DatasetError
from pipeline.stages.base import ItemError, Stage

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
BATCH = 16


def load_rgb(path: Path, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``([3, size, size] float32 normalised, (width, height))``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            original = img.size
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    except FileNotFoundError as exc:
        raise ItemError("missing", f"{path} does not exist") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ItemError("decode_error", f"{path.name}: {exc}") from exc
    x = (np.asarray(rgb, np.float32) / 255.0 - MEAN) / STD
    return x.transpose(2, 0, 1), original


class BackboneStage(Stage):
    name = "backbone"
    version = 1
    modality = "image"
    arrays = ("features",)

    def model_identity(self) -> dict[str, Any]:
        if self.cfg["model"] == "tiny":
            return model_identity("tiny-resnet", seed=self.seed)
        return model_identity(self.cfg["model"], self.cfg.get("weights") or None)

    def check(self) -> None:
        weights = self.cfg.get("weights")
        if self.cfg["model"] != "tiny" and not (weights and Path(weights).is_file()):
            raise DatasetError(
                f"backbone {self.cfg['model']} weights not found at '{weights}'; "
                "pass --set backbone.weights=/path/to/weights.pth"
            )

    def load(self) -> None:
        import torch

        from pipeline.models.backbones import build_backbone

        self.model, self.channels = build_backbone(
            self.cfg["model"], self.cfg.get("weights", ""), self.seed
        )
        self.model.to(self.device)
        self.torch = torch

    def schema(self) -> pa.Schema:
        return pa.schema([("width", pa.int32()), ("height", pa.int32())])

    def array_shape(self, name: str) -> tuple[int, ...]:
        size = int(self.cfg["input_size"])
        return (self.channels, size // 32, size // 32)  # set by load(), from the builder

    def process_shard(self, items: list[dict[str, Any]], upstream: dict[str, pd.DataFrame]):
        size = int(self.cfg["input_size"])
        results: list[dict[str, Any]] = []
        pixels: list[tuple[int, np.ndarray]] = []
        for i, item in enumerate(items):
            try:
                x, (w, h) = load_rgb(Path(item["path"]), size)
            except ItemError as exc:
                results.append({"status": exc.kind, "error": str(exc)})
                continue
            results.append({"status": "ok", "error": None, "width": w, "height": h})
            pixels.append((i, x))
        torch = self.torch
        for start in range(0, len(pixels), BATCH):
            chunk = pixels[start : start + BATCH]
            batch = torch.from_numpy(np.stack([x for _, x in chunk])).to(self.device)
            with torch.inference_mode():
                feats = self.model(batch).float().cpu().numpy()
            for (i, _), f in zip(chunk, feats, strict=True):
                results[i]["features"] = f
        return self.assemble(items, results)
