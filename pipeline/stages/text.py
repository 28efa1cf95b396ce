"""``text``: the open_clip text tower embeds each region's description and ratings.

Per region the text is ``"<content>. colour: good, noise: poor, artifact: fair, blur:
good, overall: fair"`` (``unknown`` for a missing rating; no content sentence when the
describe stage ran in ``logprob`` mode); with ``text.ratings=false`` only
``"<content>."``, so the ``--no-ratings`` ablation sees no rating words at all.
HDF5 arrays: ``embeddings`` ``[items, K+1, D]`` fp16 (projected, not L2-normalised;
slot = the region's ``region_id``, the rest region is slot K) and ``mask``
``[items, K+1]`` uint8 (1 where a region exists). Column: ``regions`` (number of
embedded regions). ``K`` is the regions stage's ``max_regions``,
which is why ``regions`` is an upstream stage too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from qfeat.cache.fingerprint import model_identity
from qfeat.pipeline.levels import DIMENSIONS, LEVELS
from qfeat.pipeline.models.source import (
    local_dir,
    parse_source,
    require_file,
    require_open_clip_folder,
    require_plain_weights,
)
from qfeat.pipeline.models.weights_facts import OpenClipWeights
from qfeat.pipeline.stages.base import NO_UPSTREAM, Stage, Upstream, item_upstream
from qfeat.pipeline.stages.settings import TextSettings

TINY_TEXT_MODEL = "tiny-vit"  # the classic CLIP text tower (77-token context) at toy size
BATCH = 256


def _rating_word(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "unknown"
    value = int(value)
    return LEVELS[value - 1] if 1 <= value <= 5 else "unknown"


def region_text(content: Any, ratings: dict[str, Any], with_ratings: bool = True) -> str:
    """The sentence embedded for one region (see the module docstring); without the
    rating words when ``with_ratings`` is false (``text.ratings=false``)."""
    content = str(content).strip().rstrip(".") if isinstance(content, str) else ""
    if not with_ratings:
        return f"{content}." if content else ""
    parts = ", ".join(f"{d}: {_rating_word(ratings.get(d))}" for d in DIMENSIONS)
    return f"{content}. {parts}" if content else parts


def region_texts(row: dict[str, Any], with_ratings: bool = True) -> list[tuple[int, str]]:
    """``[(region_id, text)]`` of a describe row (list columns, one entry per region)."""
    ids = list(row["region_id"])
    content = row.get("content")
    contents = list(content) if content is not None else [None] * len(ids)
    columns = {d: list(row[d]) for d in DIMENSIONS}
    return [
        (
            int(rid),
            region_text(contents[j], {d: columns[d][j] for d in DIMENSIONS}, with_ratings),
        )
        for j, rid in enumerate(ids)
    ]


class TextStage(Stage):
    name = "text"
    help = "text embeddings of each region's description and ratings"
    settings = TextSettings
    weights_setting = "pretrained"
    weights = OpenClipWeights()
    version = 1
    modality = "image"
    upstream = ("regions", "describe")
    arrays = ("embeddings", "mask")

    @classmethod
    def constants(cls) -> dict[str, Any]:
        """The sentence template, as one region with every rating "fair" renders it."""
        return {"template": region_text("<content>", dict.fromkeys(DIMENSIONS, 3))}

    def _model_name(self) -> str:
        return TINY_TEXT_MODEL if self.cfg["model"] == "tiny" else self.cfg["model"]

    def _random(self) -> bool:
        from qfeat.pipeline.models.clip_build import tiny_name

        random = parse_source(self.cfg["pretrained"]).kind == "random"
        return tiny_name(self._model_name()) is not None or random

    def model_identity(self) -> dict[str, Any]:
        if (folder := local_dir(self.cfg["model"])) is not None:  # every file hashed
            return model_identity(self.cfg["model"], folder)
        if self._random():
            from qfeat.pipeline.models.clip_build import random_identity

            return random_identity(self._model_name(), self.seed)
        return model_identity(self._model_name(), self.cfg["pretrained"] or None)

    def check(self) -> None:
        if local_dir(self.cfg["model"]) is not None:  # weights from the folder
            require_open_clip_folder(self.cfg["model"], "text.model", self.cfg["pretrained"])
            return
        if self._random():
            return
        source = parse_source(self.cfg["pretrained"])
        path = require_file(
            source, "text.pretrained", f"text model {self.cfg['model']}", "open_clip_weights.bin"
        )
        require_plain_weights(path, "text.pretrained")

    def load(self) -> None:
        import open_clip
        import torch

        from qfeat.pipeline.models.clip_build import OPEN_CLIP_NAMES, build_clip, tiny_name

        pretrained = self.cfg["pretrained"]
        name = self._model_name()
        model, _ = build_clip(name, "" if pretrained == "random" else pretrained, seed=self.seed)
        model.visual = None  # only the text tower is used here
        self.model = model.to(self.device).eval()
        tiny = tiny_name(name)
        # a local-dir: folder's config names its tokenizer (open_clip reads it there)
        self.tokenizer = open_clip.get_tokenizer(OPEN_CLIP_NAMES[tiny] if tiny else name)
        self.torch = torch
        with torch.inference_mode():
            self.dim = int(self.model.encode_text(self.tokenizer(["probe"])).shape[-1])

    def schema(self) -> pa.Schema:
        return pa.schema([("regions", pa.int32())])

    @staticmethod
    def slots(upstream: Upstream) -> int:
        """K + 1 region slots: the regions cache's ``max_regions`` plus the rest region."""
        return int(upstream.settings["regions"]["max_regions"]) + 1

    def array_shape(self, name: str, upstream: Upstream) -> tuple[int, ...]:
        slots = self.slots(upstream)
        return (slots, self.dim) if name == "embeddings" else (slots,)

    def encode(self, texts: list[str]) -> np.ndarray:
        """``[len(texts), D]`` float32 projected text embeddings."""
        torch = self.torch
        out = []
        for start in range(0, len(texts), BATCH):
            tokens = self.tokenizer(texts[start : start + BATCH]).to(self.device)
            with torch.inference_mode():
                out.append(self.model.encode_text(tokens).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def process_shard(self, items: list[dict[str, Any]], upstream: Upstream = NO_UPSTREAM):
        slots = self.slots(upstream)
        results, texts, where = [], [], []
        for i, item in enumerate(items):
            ups, failure = item_upstream(item, upstream)
            if failure:
                results.append(failure)
                continue
            pairs = region_texts(ups["describe"], bool(self.cfg["ratings"]))
            if any(not 0 <= rid < slots for rid, _ in pairs):
                results.append({"status": "error", "error": f"region id outside 0..{slots - 1}"})
                continue
            results.append(
                {
                    "status": "ok",
                    "error": None,
                    "regions": len(pairs),
                    "embeddings": np.zeros((slots, self.dim), np.float32),
                    "mask": np.zeros(slots, np.uint8),
                }
            )
            for rid, text in pairs:
                texts.append(text)
                where.append((i, rid))
        for (i, rid), emb in zip(where, self.encode(texts), strict=True):
            results[i]["embeddings"][rid] = emb
            results[i]["mask"][rid] = 1
        return self.assemble(items, results, upstream)
