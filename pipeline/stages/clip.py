"""``clip``: CLIP features of the frames the ``frames`` stage chose.

Only the chosen frames are decoded, at full size, squashed to the model's input size
and normalised as the model expects. HDF5 arrays (fp16): ``embeddings`` ``[items, T, D]``
(pooled projected embedding, not L2-normalised), ``pooled`` ``[items, T, width]`` (the
same pooled feature before the projection: what Q-CLIP's projection adapter reads, so
``--mode projection`` trains from it) and ``hidden`` ``[items, T, tokens, width]`` (the
tokens entering vision block L-K, K = ``clip.adapted_blocks``), so a trainer can run the
last K blocks with adapters from the cache (see ``qfeat.pipeline.models.clip_split``).
Columns: ``frames`` (T), ``reader``. Version 2 added ``pooled``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from qfeat.cache.fingerprint import model_identity
from qfeat.errors import ItemError, OptionError
from qfeat.pipeline.models.source import (
    local_dir,
    parse_source,
    require_file,
    require_open_clip_folder,
    require_plain_weights,
)
from qfeat.pipeline.models.weights_facts import OpenClipWeights
from qfeat.pipeline.stages.base import NO_UPSTREAM, Stage, Upstream, item_upstream
from qfeat.pipeline.stages.settings import ClipSettings
from qfeat.pipeline.video.reader import VideoError, read_video

FRAMES_PER_FORWARD = 64


def squash(frames: np.ndarray, size: tuple[int, int], mean, std, interpolation: str) -> np.ndarray:
    """uint8 ``[T, h, w, 3]`` -> float32 ``[T, 3, H, W]`` resized (no crop) and normalised."""
    from PIL import Image

    resample = {
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
    }.get(interpolation, Image.Resampling.BICUBIC)
    h, w = size
    out = np.empty((len(frames), 3, h, w), np.float32)
    mean = np.asarray(mean, np.float32)[:, None, None]
    std = np.asarray(std, np.float32)[:, None, None]
    for i, frame in enumerate(frames):
        img = np.asarray(Image.fromarray(frame).resize((w, h), resample), np.float32) / 255.0
        out[i] = (img.transpose(2, 0, 1) - mean) / std
    return out


class ClipStage(Stage):
    name = "clip"
    help = "CLIP embeddings and hidden tokens of the chosen frames"
    settings = ClipSettings
    weights_setting = "pretrained"
    weights = OpenClipWeights()
    version = 2
    modality = "video"
    upstream = ("frames",)
    arrays = ("embeddings", "pooled", "hidden")

    def _tiny(self) -> bool:
        from qfeat.pipeline.models.clip_build import tiny_name

        return tiny_name(self.cfg["model"]) is not None

    def _folder(self) -> Path | None:
        """The open_clip folder of a ``local-dir:`` model (config and weights inside)."""
        return local_dir(str(self.cfg["model"]))

    def model_identity(self) -> dict[str, Any]:
        pretrained = self.cfg["pretrained"]
        if (folder := self._folder()) is not None:  # every file of the folder hashed
            return model_identity(self.cfg["model"], folder)
        if self._tiny() or parse_source(pretrained).kind == "random":
            from qfeat.pipeline.models.clip_build import random_identity

            return random_identity(self.cfg["model"], self.seed)
        return model_identity(self.cfg["model"], pretrained or None)

    def check(self) -> None:
        if self.cfg["rope"] != "pe" and not _is_pe(self.cfg["model"]):
            raise OptionError(
                f"clip.rope={self.cfg['rope']} applies to PE towers (PE-Core-*, tiny-pe), "
                f"not clip.model={self.cfg['model']}; leave clip.rope=pe"
            )
        if self._folder() is not None:
            require_open_clip_folder(self.cfg["model"], "clip.model", self.cfg["pretrained"])
            return  # its weights come from the folder, not clip.pretrained
        source = parse_source(self.cfg["pretrained"])
        if self._tiny() or source.kind == "random":
            return
        path = require_file(
            source, "clip.pretrained", f"clip model {self.cfg['model']}", "open_clip_weights.bin"
        )
        require_plain_weights(path, "clip.pretrained")

    def load(self) -> None:
        import torch

        from qfeat.pipeline.models.clip_build import build_clip
        from qfeat.pipeline.models.clip_split import encode_frames
        from qfeat.pipeline.models.pe_rope import set_rope_order

        pretrained = self.cfg["pretrained"]
        model, self.pre = build_clip(
            self.cfg["model"], "" if pretrained == "random" else pretrained, seed=self.seed
        )
        self.model = set_rope_order(model, self.cfg["rope"]).to(self.device)
        self.k = int(self.cfg["adapted_blocks"])
        self.torch, self.encode = torch, encode_frames
        self.autocast = self.device == "cuda" and self.cfg["dtype"] == "bfloat16"
        self.shapes: dict[str, tuple[int, ...]] = {}  # per-frame shapes, from a forward

    def _forward(self, pixels) -> dict[str, np.ndarray]:
        """The arrays of ``pixels`` ``[N, 3, H, W]``; remembers their per-frame shapes."""
        torch = self.torch
        x = torch.as_tensor(pixels).to(self.device)
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=self.autocast):
            outputs = self.encode(self.model, x, self.k)
        arrays = {n: o.float().cpu().numpy() for n, o in zip(self.arrays, outputs, strict=True)}
        self.shapes = {name: a.shape[1:] for name, a in arrays.items()}
        return arrays

    def schema(self) -> pa.Schema:
        return pa.schema([("frames", pa.int32()), ("reader", pa.string())])

    def array_shape(self, name: str, upstream: Upstream) -> tuple[int, ...]:
        t = int(upstream.settings["frames"]["num_frames"])
        if not self.shapes:  # no frame encoded yet (every item failed): one blank frame
            self._forward(np.zeros((1, 3, *self.pre.size), np.float32))
        return (t, *self.shapes[name])

    def _decode(self, item: dict[str, Any], frames_row: dict[str, Any]) -> tuple[np.ndarray, str]:
        indices = [int(i) for i in frames_row["indices"]]
        path = Path(item["path"])
        try:
            frames, reader = read_video(path, lambda r: r.frames(indices))
        except VideoError as exc:
            raise ItemError(exc.kind, str(exc)) from exc
        pre = self.pre
        return squash(frames, pre.size, pre.mean, pre.std, pre.interpolation), reader.name

    def process_shard(self, items: list[dict[str, Any]], upstream: Upstream = NO_UPSTREAM):
        results: list[dict[str, Any]] = []
        pending: list[tuple[int, np.ndarray]] = []
        for i, item in enumerate(items):
            ups, failure = item_upstream(item, upstream)
            if failure:
                results.append(failure)
                continue
            row = ups["frames"]
            try:
                pixels, reader = self._decode(item, row)
            except ItemError as exc:
                results.append({"status": exc.kind, "error": str(exc)})
                continue
            results.append({"status": "ok", "error": None, "frames": len(pixels), "reader": reader})
            pending.append((i, pixels))
        batch: list[tuple[int, np.ndarray]] = []

        def flush() -> None:
            if not batch:
                return
            arrays = self._forward(np.concatenate([p for _, p in batch]))
            start = 0
            for i, p in batch:
                for name, values in arrays.items():
                    results[i][name] = values[start : start + len(p)]
                start += len(p)
            batch.clear()

        for i, pixels in pending:
            if batch and sum(len(p) for _, p in batch) + len(pixels) > FRAMES_PER_FORWARD:
                flush()
            batch.append((i, pixels))
        flush()
        return self.assemble(items, results, upstream)


def _is_pe(model: str) -> bool:
    """A PE tower by name (``local-dir:`` folders are checked when built)."""
    from qfeat.pipeline.models.clip_build import tiny_name

    return model.startswith(("PE-", "local-dir:")) or tiny_name(model) == "tiny-pe"
