"""``describe``: a vision-language model describes and rates every SAM region.

Parquet only, one row per image; every list column has one entry per region, in the
order of the regions row (``region_id``: SAM regions ``0..n-1``, the rest region ``K``):

============== ================ =====================================================
column         type             meaning
============== ================ =====================================================
region_id      list<int32>      the regions row's ids, same order
content        list<string>     a few words on what the region shows (null: unknown;
                                always null in ``logprob`` mode)
colour, noise, list<int8>       1..5 = bad, poor, fair, good, excellent; null when the
artifact,                       answer gave no valid level word
blur, overall
raw            list<string>     ``generate``: the model's new text, verbatim;
                                ``logprob``: JSON ``{"probs": {dim: [p_bad, ..,
                                p_excellent]}, "mass": {dim: m}}`` (see below)
parse_ok       list<bool>       ``generate``: a strict JSON object with all five
                                ratings valid (:mod:`qfeat.pipeline.describe.parse`);
                                ``logprob``: the probabilities were finite
prompt_version string           :data:`qfeat.pipeline.describe.prompt.PROMPT_VERSION`
============== ================ =====================================================

Per region the model sees :func:`qfeat.pipeline.describe.prompt.region_view` of the image
(read by :func:`qfeat.pipeline.images.open_image` at the regions stage's ``max_side``, so the
masks match; a mask of another size is resized nearest-neighbour).

Modes (``describe.mode``):

- ``generate``: the chat-templated question asks for JSON; greedy decoding of at most
  ``max_new_tokens`` (at least ``min_new_tokens``, default 0) new tokens, ``batch_size``
  regions per ``generate`` call, left padding, the shard's regions sorted by view size
  so a batch holds similar image-token counts.
- ``logprob`` (cheaper: no decoding loop): per region and dimension one forward pass of
  the question followed by the answer start ``"The <dimension> quality of this region
  is"``; the next-token probabilities of the first tokens of ``" bad"``, ``" poor"``,
  ``" fair"``, ``" good"``, ``" excellent"`` are read, normalised to sum to 1 over those
  five (``probs``), and the rating is the argmax (1..5). ``mass`` is the share of the
  whole vocabulary's probability the five tokens held before normalising (low mass: the
  model would rather say something else). ``batch_size`` regions (x5 sequences) per call.

On CUDA the model runs in ``describe.dtype``; on CPU always float32. A batch that fails
(e.g. out of memory) is retried region by region; a region that still fails makes its
item a ``model_error`` row.

Optional config keys (read with defaults): ``max_side`` (448, long side of the region
view in pixels), ``margin`` (0.1, box margin as a fraction of its longer side),
``min_new_tokens`` (0), ``revision`` (hub revision, default ``main``).
"""

from __future__ import annotations

import inspect
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from qfeat.cache.fingerprint import model_identity
from qfeat.errors import DatasetError, ItemError
from qfeat.pipeline.describe.parse import DIMENSIONS, clean_text, parse_answer
from qfeat.pipeline.describe.prompt import (
    LEVEL_CONTINUATIONS,
    PROMPT_VERSION,
    generate_prompt,
    logprob_prompts,
    region_view,
    resize_mask,
)
from qfeat.pipeline.models.vlm import TINY_NAME, TINY_RECIPE, check_source
from qfeat.pipeline.models.weights_facts import VisionLanguageWeights
from qfeat.pipeline.stages.base import NO_UPSTREAM, Stage, Upstream, item_upstream
from qfeat.pipeline.stages.settings import DescribeSettings

log = logging.getLogger(__name__)

WINDOW = 1024  # regions whose views are held in memory (and sorted by size) at once


class DescribeStage(Stage):
    name = "describe"
    help = "a vision-language model describes and rates each region"
    settings = DescribeSettings
    weights_setting = "model"
    weights = VisionLanguageWeights()
    version = 1
    modality = "image"
    upstream = ("regions",)
    arrays = ()

    # -- settings ------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return str(self.cfg["model"])

    @property
    def mode(self) -> str:
        return str(self.cfg["mode"])

    def _local(self) -> Path | None:
        path = Path(self.model_name).expanduser()
        return path if self.model_name != "tiny" and path.is_dir() else None

    # -- identity and checks (driver side) -----------------------------------------------
    @classmethod
    def constants(cls) -> dict[str, Any]:
        """The prompt's text itself (not a version someone must bump), the region view's
        grey and aspect limit, and how much of an answer the parser reads."""
        from qfeat.pipeline.describe import parse, prompt

        return {
            "prompt": prompt.prompt_texts(),
            "view": {"grey": prompt.GREY, "max_aspect": prompt.MAX_ASPECT},
            "parse": {"max_scan": parse.MAX_SCAN, "max_objects": parse.MAX_OBJECTS,
                      "max_content": parse.MAX_CONTENT},
        }  # fmt: skip

    def model_identity(self) -> dict[str, Any]:
        if self.model_name == "tiny":
            return model_identity(TINY_NAME, seed=self.seed, recipe=TINY_RECIPE)
        local = self._local()
        if local is not None:
            return model_identity(local.name, local)
        return model_identity(self.model_name, revision=self.cfg["revision"] or "main")

    def check(self) -> None:
        check_source(self.model_name, self.cfg["revision"] or None)

    # -- work (worker side) --------------------------------------------------------------
    def load(self) -> None:
        import torch

        from qfeat.pipeline.models.vlm import ensure_tiny_vlm, load_vlm

        source = ensure_tiny_vlm(self.seed) if self.model_name == "tiny" else self.model_name
        self.processor, self.model = load_vlm(
            source,
            dtype=str(self.cfg["dtype"]),
            device=self.device,
            revision=self.cfg["revision"] or None,
        )
        self.torch = torch
        tokenizer = self.processor.tokenizer
        self.level_ids = [
            tokenizer(word, add_special_tokens=False)["input_ids"][0]
            for word in LEVEL_CONTINUATIONS
        ]
        if self.mode == "logprob" and len(set(self.level_ids)) != len(self.level_ids):
            raise DatasetError(
                f"describe model '{self.model_name}': the level words start with shared "
                f"tokens {self.level_ids}, so logprob mode cannot tell them apart"
            )
        self.keep_last = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def schema(self) -> pa.Schema:
        return pa.schema(
            [
                ("region_id", pa.list_(pa.int32())),
                ("content", pa.list_(pa.string())),
                *((d, pa.list_(pa.int8())) for d in DIMENSIONS),
                ("raw", pa.list_(pa.string())),
                ("parse_ok", pa.list_(pa.bool_())),
                ("prompt_version", pa.string()),
            ]
        )

    def region_views(
        self, item: dict[str, Any], row: dict[str, Any], max_side: int
    ) -> list[np.ndarray]:
        """``uint8 [h, w, 3]`` view of each region of ``row``, in the row's order, from the
        image read as the regions stage read it (at most ``max_side`` on its long side)."""
        from pycocotools import mask as mask_utils

        from qfeat.pipeline.images import open_image

        counts, boxes = list(row["rle"]), list(row["bbox"])
        if not len(counts) == len(boxes) == len(row["region_id"]):
            raise ItemError("upstream_error", "regions row has lists of different lengths")
        image = open_image(Path(item["path"]), max_side=max_side)
        height, width = int(row["height"]), int(row["width"])
        views = []
        for s, box in zip(counts, boxes, strict=True):
            text = s.decode() if isinstance(s, bytes) else str(s)
            with warnings.catch_warnings():  # pycocotools' numpy-2 copy=False notice
                warnings.simplefilter("ignore", DeprecationWarning)
                mask = mask_utils.decode({"size": [height, width], "counts": text.encode()})
            mask = resize_mask(mask.astype(bool), *image.shape[:2])
            sx, sy = image.shape[1] / width, image.shape[0] / height
            x, y, w, h = (float(v) for v in box)
            bbox = (round(x * sx), round(y * sy), round(w * sx), round(h * sy))
            views.append(
                region_view(
                    image,
                    mask,
                    bbox,
                    max_side=int(self.cfg["max_side"]),
                    margin=float(self.cfg["margin"]),
                )
            )
        return views

    def process_shard(self, items: list[dict[str, Any]], upstream: Upstream = NO_UPSTREAM):
        results: list[dict[str, Any]] = []
        pending: list[tuple[int, int, np.ndarray]] = []  # (item index, region index, view)
        t0, count = time.perf_counter(), 0
        max_side = int(upstream.settings["regions"]["max_side"]) if items else 0
        for i, item in enumerate(items):
            ups, failure = item_upstream(item, upstream)
            if failure:
                results.append(failure)
                continue
            row = ups["regions"]
            try:
                views = self.region_views(item, row, max_side)
            except ItemError as exc:
                results.append({"status": exc.kind, "error": str(exc)})
                continue
            except Exception as exc:  # noqa: BLE001 - one bad item must not stop the shard
                log.warning("describe failed on %s: %s", item["item_id"], exc)
                results.append({"status": "error", "error": f"{type(exc).__name__}: {exc}"})
                continue
            n = len(views)
            results.append(
                {
                    "status": "ok",
                    "error": None,
                    "region_id": [int(r) for r in row["region_id"]],
                    "prompt_version": PROMPT_VERSION,
                    **{k: [None] * n for k in ("content", *DIMENSIONS, "raw", "parse_ok")},
                }
            )
            pending.extend((i, j, v) for j, v in enumerate(views))
            if len(pending) >= WINDOW:
                count += self._run(pending, results)
                pending = []
        count += self._run(pending, results)
        seconds = time.perf_counter() - t0
        log.info("described %d regions in %.1f s (%s mode)", count, seconds, self.mode)
        return self.assemble(items, results, upstream)

    def _run(self, pending: list[tuple[int, int, np.ndarray]], results: list[dict]) -> int:
        """Describe ``pending`` views and write the answers into ``results`` in place."""
        from PIL import Image

        order = sorted(range(len(pending)), key=lambda k: (pending[k][2].size, k))
        batch = int(self.cfg["batch_size"])
        run = self._generate if self.mode == "generate" else self._logprob
        for start in range(0, len(order), batch):
            chunk = [pending[k] for k in order[start : start + batch]]
            images = [Image.fromarray(view) for _, _, view in chunk]
            for (i, j, _), answer in zip(chunk, self._guarded(run, images), strict=True):
                if isinstance(answer, Exception):
                    results[i] = {"status": "model_error", "error": f"region {j}: {answer}"}
                elif results[i]["status"] == "ok":
                    for key, value in answer.items():
                        results[i][key][j] = value
        return len(pending)

    def _guarded(self, run, images: list) -> list[dict[str, Any] | Exception]:
        """``run(images)``; a failing batch is retried one image at a time."""
        try:
            return run(images)
        except Exception as exc:  # noqa: BLE001 - e.g. CUDA out of memory on a large batch
            if len(images) == 1:
                log.warning("describe model failed on a region: %s", exc)
                return [RuntimeError(f"{type(exc).__name__}: {exc}")]
            log.warning("describe batch of %d failed (%s); retrying one by one", len(images), exc)
            return [self._guarded(run, [image])[0] for image in images]

    def _inputs(self, texts: list[str], images: list):
        inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        return inputs.to(device=self.device, dtype=self.model.dtype)

    def _generate(self, images: list) -> list[dict[str, Any]]:
        """Greedy JSON answers for a batch of PIL views."""
        inputs = self._inputs([generate_prompt(self.processor)] * len(images), images)
        with self.torch.inference_mode():
            out = self.model.generate(
                **inputs,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                max_new_tokens=int(self.cfg["max_new_tokens"]),
                min_new_tokens=int(self.cfg["min_new_tokens"]),
            )
        new = out[:, inputs["input_ids"].shape[1] :].cpu()
        texts = self.processor.batch_decode(new, skip_special_tokens=True)
        answers = []
        for text in texts:
            content, ratings, ok = parse_answer(text)
            answers.append({"content": content, **ratings, "raw": clean_text(text), "parse_ok": ok})
        return answers

    def _logprob(self, images: list) -> list[dict[str, Any]]:
        """Level-word probabilities per dimension for a batch of PIL views."""
        torch = self.torch
        prompts = logprob_prompts(self.processor)
        texts = [prompts[d] for _ in images for d in DIMENSIONS]
        inputs = self._inputs(texts, [image for image in images for _ in DIMENSIONS])
        extra = {"logits_to_keep": 1} if self.keep_last else {}
        with torch.inference_mode():
            logits = self.model(**inputs, **extra).logits[:, -1, :].float()
        probs = torch.softmax(logits, dim=-1)[:, self.level_ids].cpu().double().numpy()
        probs = probs.reshape(len(images), len(DIMENSIONS), len(self.level_ids))
        answers = []
        for p in probs:
            mass = p.sum(axis=1)
            norm = p / np.maximum(mass[:, None], 1e-300)
            ok = bool(np.isfinite(norm).all() and (mass > 0).all())
            ratings = {
                d: int(np.argmax(norm[k])) + 1 if ok else None for k, d in enumerate(DIMENSIONS)
            }
            raw = {
                "probs": {
                    d: [round(float(v), 6) for v in norm[k]] for k, d in enumerate(DIMENSIONS)
                },
                "mass": {d: round(float(mass[k]), 6) for k, d in enumerate(DIMENSIONS)},
            }
            answers.append({"content": None, **ratings, "raw": json.dumps(raw), "parse_ok": ok})
        return answers
