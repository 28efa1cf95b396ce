"""``regions``: SAM automatic masks turned into at most K disjoint regions plus "rest".

Parquet only, one row per image (columns of :meth:`RegionsStage.schema`). The image is
read with :func:`qfeat.pipeline.images.open_image` (at most ``regions.max_side`` pixels on its
long side, default 1024); ``width``/``height`` are of the image as segmented, and every
mask is a COCO compressed RLE at that size. Regions ``0..n-1`` (n <= K) are SAM masks,
largest owned area first; the rest region, id K (``max_regions``), holds every pixel
left over and is present whenever one is. ``region_id`` is thus a slot in ``[0, K]``.

Per shard, images are read, the image encoder runs on batches of ``batch_size`` of them
and segment-anything's automatic mask generator decodes each image from its embedding
(``batched = false`` in the config runs the stock generator image by image instead).
The image encoder runs with fused attention, in ``regions.dtype`` on CUDA (float32 on
the CPU; :mod:`qfeat.pipeline.precision`, :mod:`qfeat.pipeline.models.sam_fast`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from qfeat.cache.fingerprint import model_identity
from qfeat.errors import DatasetError, ItemError
from qfeat.pipeline.models.source import parse_source, require_plain_weights
from qfeat.pipeline.models.weights_facts import SamWeights
from qfeat.pipeline.regions import (
    SAM2_CHECKPOINTS,
    SAM2_MODELS,
    SAM_CHECKPOINTS,
    TINY_SAM2,
    encode_rle,
    partition_masks,
)
from qfeat.pipeline.stages.base import NO_UPSTREAM, Stage, Upstream
from qfeat.pipeline.stages.settings import RegionsSettings

if TYPE_CHECKING:
    from qfeat.pipeline.models.sam import MaskParams

log = logging.getLogger(__name__)


class RegionsStage(Stage):
    name = "regions"
    help = "SAM masks as at most K disjoint regions plus a rest region"
    settings = RegionsSettings
    weights_setting = "checkpoint"
    weights = SamWeights()
    version = 1
    modality = "image"
    upstream = ()
    arrays = ()

    # -- settings ------------------------------------------------------------------------
    @property
    def max_regions(self) -> int:
        return int(self.cfg["max_regions"])

    def _params(self) -> MaskParams:
        from qfeat.pipeline.models.sam import MaskParams

        return MaskParams(
            points_per_side=int(self.cfg["points_per_side"]),
            points_per_batch=int(self.cfg["points_per_batch"]),
            pred_iou_thresh=float(self.cfg["pred_iou_thresh"]),
            stability_score_thresh=float(self.cfg["stability_score_thresh"]),
            box_nms_thresh=float(self.cfg["box_nms_thresh"]),
        )

    # -- identity and checks -------------------------------------------------------------
    @property
    def sam2(self) -> bool:
        """Whether ``regions.model`` is a SAM 2.1 model (the ``sam2`` package's)."""
        return self.cfg["model"] in SAM2_MODELS

    def model_identity(self) -> dict[str, Any]:
        model = self.cfg["model"]
        if model == TINY_SAM2:
            from qfeat.pipeline.models.sam2_build import tiny_architecture

            return model_identity(TINY_SAM2, seed=self.seed, arch=tiny_architecture())
        if self.sam2:
            return model_identity(model, self.cfg["checkpoint"] or None)
        if model == "tiny":
            from qfeat.pipeline.models.sam import tiny_architecture

            return model_identity("tiny-sam", seed=self.seed, arch=tiny_architecture())
        return model_identity(f"sam_{model}", self.cfg["checkpoint"] or None)

    def check(self) -> None:
        model, checkpoint = self.cfg["model"], self.cfg["checkpoint"]
        if self.sam2:
            from qfeat.pipeline.models.sam2_build import require_sam2

            require_sam2(model)
        built_in = model in ("tiny", TINY_SAM2)
        if not built_in and parse_source(checkpoint).kind != "file":
            official = {**SAM_CHECKPOINTS, **SAM2_CHECKPOINTS}[model]
            raise DatasetError(
                f"SAM checkpoint not found at '{checkpoint}'; pass "
                f"--set regions.checkpoint=/path/{official} "
                "(or set regions.checkpoint in the preset)"
            )
        if not built_in:
            require_plain_weights(Path(checkpoint), "regions.checkpoint")

    # -- work ----------------------------------------------------------------------------
    def load(self) -> None:
        from qfeat.pipeline.models.sam import MaskGenerator, build_sam
        from qfeat.pipeline.models.sam_fast import speed_up
        from qfeat.pipeline.precision import run_dtype

        self.params = self._params()
        self.dtype = run_dtype(str(self.cfg["dtype"]), self.device, self.name)
        if self.sam2:
            from qfeat.pipeline.models.sam2_build import build_sam2, mask_generator

            model = build_sam2(self.cfg["model"], self.cfg["checkpoint"], self.seed)
            self.model = model.to(self.device)
            self.generator = mask_generator(self.model, self.params)
            return
        model = build_sam(self.cfg["model"], self.cfg["checkpoint"], self.seed)
        self.model = speed_up(model, self.dtype).to(self.device)
        self.generator = MaskGenerator(self.model, self.params)

    def schema(self) -> pa.Schema:
        return pa.schema(
            [
                ("width", pa.int32()),
                ("height", pa.int32()),
                ("region_id", pa.list_(pa.int32())),
                ("rle", pa.list_(pa.string())),
                ("bbox", pa.list_(pa.list_(pa.int32()))),
                ("area_frac", pa.list_(pa.float32())),
                ("predicted_iou", pa.list_(pa.float32())),
                ("stability_score", pa.list_(pa.float32())),
            ]
        )

    def process_shard(
        self, items: list[dict[str, Any]], upstream: Upstream = NO_UPSTREAM
    ) -> tuple[pa.Table, dict[str, np.ndarray]]:
        """Read the images, encode them ``batch_size`` at a time, then mask each one."""
        import torch

        from qfeat.pipeline.images import open_image

        max_side = int(self.cfg["max_side"])
        batch_size = int(self.cfg["batch_size"])
        results: list[dict[str, Any]] = [{} for _ in items]
        batch: list[tuple[int, np.ndarray]] = []  # (row, uint8 [H, W, 3]) awaiting SAM
        timer = {"read": 0.0, "encode": 0.0, "masks": 0.0}
        with torch.inference_mode():
            for i, item in enumerate(items):
                t0 = time.perf_counter()
                try:
                    image = open_image(Path(item["path"]), max_side=max_side)
                    self._require_usable_size(image)
                    batch.append((i, image))
                except ItemError as exc:
                    results[i] = {"status": exc.kind, "error": str(exc)}
                except Exception as exc:  # noqa: BLE001 - one bad item must not stop the shard
                    log.warning("regions could not read %s: %s", item["item_id"], exc)
                    results[i] = {"status": "decode_error", "error": f"{type(exc).__name__}: {exc}"}
                timer["read"] += time.perf_counter() - t0
                if batch and (len(batch) == batch_size or i == len(items) - 1):
                    self._segment(batch, items, results, timer)
                    batch = []
        log.info(
            "regions: %d items, read %.2fs, encode %.2fs, masks+partition %.2fs",
            len(items),
            timer["read"],
            timer["encode"],
            timer["masks"],
        )
        return self.assemble(items, results, upstream)

    def _require_usable_size(self, image: np.ndarray) -> None:
        """An ItemError (``unusable_size``) for an image whose short side rounds to zero
        pixels at SAM's input size (its long side is resized to ``img_size``)."""
        h, w = image.shape[:2]
        side = int(self.model.image_size if self.sam2 else self.model.image_encoder.img_size)
        if min(h, w) * side / max(h, w) + 0.5 < 1:
            raise ItemError(
                "unusable_size",
                f"a {w}x{h} image is {min(h, w) * side / max(h, w):.2f} pixels on its short side "
                f"at SAM's {side}-pixel input: too thin to segment (crop or pad it)",
            )

    def _segment(
        self,
        batch: list[tuple[int, np.ndarray]],
        items: list[dict[str, Any]],
        results: list[dict[str, Any]],
        timer: dict[str, float],
    ) -> None:
        """Fill ``results[row]`` for every image of ``batch``."""
        from qfeat.pipeline.models.sam import encode_images, generate_stock

        batched = bool(self.cfg["batched"]) and not self.sam2  # SAM 2.1: its own generator
        t0 = time.perf_counter()
        embeddings: list[Any] = [None] * len(batch)
        if batched:
            try:
                embeddings = encode_images(self.model, [image for _, image in batch])
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: fail this batch only
                log.warning("regions: image encoder failed on a batch: %s", exc)
                for row, _ in batch:
                    results[row] = {
                        "status": "model_error",
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                return
        t1 = time.perf_counter()
        for (row, image), embedding in zip(batch, embeddings, strict=True):
            try:
                if self.sam2:
                    from qfeat.pipeline.models.sam2_build import generate

                    records = generate(self.generator, image, self.dtype)
                elif embedding is None:
                    records = generate_stock(self.model, image, self.params)
                else:
                    records = self.generator.generate_from(image, embedding)
                results[row] = {"status": "ok", "error": None, **self.regions_row(image, records)}
            except Exception as exc:  # noqa: BLE001 - one bad item must not stop the shard
                log.warning("regions failed on %s: %s", items[row]["item_id"], exc)
                results[row] = {"status": "model_error", "error": f"{type(exc).__name__}: {exc}"}
        timer["encode"] += t1 - t0
        timer["masks"] += time.perf_counter() - t1

    def regions_row(self, image: np.ndarray, records: list[dict[str, Any]]) -> dict[str, Any]:
        """The stage's columns for one image from segment-anything's mask records.

        ``image``: ``uint8 [H, W, 3]``; ``records``: ``generate()`` output with
        uncompressed RLE ``segmentation`` (see :class:`qfeat.pipeline.models.sam.MaskParams`).
        """
        from qfeat.pipeline.models.sam import record_mask

        h, w = image.shape[:2]
        partition = partition_masks(
            [record_mask(r) for r in records],
            [float(r["predicted_iou"]) for r in records],
            (h, w),
            self.max_regions,
            float(self.cfg["min_area_frac"]),
            rule=str(self.cfg["overlap"]),
        )
        regions = partition.regions
        sources = [None if r.source is None else records[r.source] for r in regions]
        return {
            "width": w,
            "height": h,
            "region_id": [r.region_id for r in regions],
            "rle": [encode_rle(partition.mask(r.region_id)) for r in regions],
            "bbox": [list(r.bbox) for r in regions],
            "area_frac": [r.area_frac for r in regions],
            "predicted_iou": [None if s is None else float(s["predicted_iou"]) for s in sources],
            "stability_score": [
                None if s is None else float(s["stability_score"]) for s in sources
            ],
        }
