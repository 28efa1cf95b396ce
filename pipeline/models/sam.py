"""Segment Anything: model builders and automatic masks from a batched image encoder.

``build_sam("tiny", seed=s)`` is SAM at toy size (256-pixel input, 2-block ViT) from the
real segment-anything classes with seeded random weights; ``vit_h`` / ``vit_l`` /
``vit_b`` are the published architectures, built by segment-anything's own registry
without weights and then loaded from a local ``.pth`` with ``weights_only=True``.
Nothing is ever downloaded.

Automatic mask generation is segment-anything's :class:`SamAutomaticMaskGenerator`
unchanged (one crop layer, no hole filling), except that the image embedding may come
from :func:`encode_images`, which runs the image encoder on a batch of images: on a GPU
that pass is where the time goes. :func:`generate_stock` is the stock path (one
``set_image`` per image), kept for comparisons and benchmarks.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)
from segment_anything.utils.amg import (
    MaskData,
    batched_mask_to_box,
    calculate_stability_score,
    is_box_near_crop_edge,
    uncrop_masks,
)
from segment_anything.utils.transforms import ResizeLongestSide

from qfeat.errors import DatasetError
from qfeat.pipeline.models.architecture import architecture_hash
from qfeat.pipeline.models.no_init import skip_random_init
from qfeat.pipeline.regions import SAM_CHECKPOINTS, SAM_MODELS

log = logging.getLogger(__name__)


def _tiny_sam() -> Sam:
    """SAM at toy size: 256x256 input, ViT of width 64 and depth 2, 32-d prompts."""
    prompt_dim, img_size, patch = 32, 256, 16
    grid = img_size // patch
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=patch,
            embed_dim=64,
            depth=2,
            num_heads=2,
            mlp_ratio=4,
            out_chans=prompt_dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=prompt_dim, mlp_dim=64, num_heads=2
            ),
            transformer_dim=prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


@functools.cache
def tiny_architecture() -> str:
    """:func:`~qfeat.pipeline.models.architecture.architecture_hash` of the toy SAM."""
    return architecture_hash(_tiny_sam)


def build_sam(model: str, checkpoint: str = "", seed: int = 0) -> Sam:
    """A SAM model in eval mode on the CPU.

    ``model``: ``"tiny"`` (seeded random weights, ``checkpoint`` ignored) or one of
    ``vit_h``, ``vit_l``, ``vit_b`` with ``checkpoint`` the path of the matching
    ``sam_vit_*.pth`` state dict. Raises :class:`DatasetError` for an unknown model or a
    missing checkpoint.
    """
    if model == "tiny":
        torch.manual_seed(seed)
        return _tiny_sam().eval()
    if model not in SAM_MODELS:
        raise DatasetError(f"unknown SAM model '{model}' (known: {', '.join(SAM_MODELS)})")
    path = Path(checkpoint) if checkpoint else None
    if path is None or not path.is_file():
        raise DatasetError(
            f"SAM checkpoint not found at '{checkpoint}'; pass "
            f"--set regions.checkpoint=/path/{SAM_CHECKPOINTS[model]} (or set regions.checkpoint "
            "in the preset)"
        )
    with skip_random_init():  # every parameter comes from the file (a strict load)
        sam = sam_model_registry[model](checkpoint=None)  # architecture only
    # the stock builder unpickles the file without weights_only: load it ourselves
    state = torch.load(path, map_location="cpu", weights_only=True)
    sam.load_state_dict(state, strict=True)
    return sam.eval()


@dataclass(frozen=True)
class MaskParams:
    """The automatic mask generator's settings (segment-anything's keyword arguments).

    ``points_per_side``: the prompt grid is ``points_per_side**2`` points.
    ``points_per_batch``: prompts decoded at once (memory vs. speed; no effect on output).
    ``pred_iou_thresh``: keep masks whose predicted IoU is above this, in [0, 1]; 0 = off.
    ``stability_score_thresh``: keep masks at least this stable, in [0, 1]; 0 = off.
    ``box_nms_thresh``: box IoU above which duplicate masks are suppressed, in [0, 1].
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7

    def kwargs(self) -> dict[str, Any]:
        return {
            "points_per_side": self.points_per_side,
            "points_per_batch": self.points_per_batch,
            "pred_iou_thresh": self.pred_iou_thresh,
            "stability_score_thresh": self.stability_score_thresh,
            "box_nms_thresh": self.box_nms_thresh,
            "crop_n_layers": 0,
            "min_mask_region_area": 0,
            # decoded by ``record_mask`` (vectorised); stock binary_mask loops in Python
            "output_mode": "uncompressed_rle",
        }


@dataclass(frozen=True)
class Embedding:
    """One image's encoder output: ``features`` ``[1, C, h, w]`` float32 on the model's
    device (C = 256, h = w = 64 for the real models) and ``input_size`` ``(H', W')``, the
    image size after resizing its longest side to the encoder's input size."""

    features: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]


class _EmbeddingPredictor(SamPredictor):
    """A SamPredictor whose ``set_image`` takes a precomputed embedding when one is set.

    The mask generator calls ``set_image`` once per crop; with one crop layer that is the
    whole image, so the state it sets is exactly what stock ``set_image`` would set.
    """

    pending: Embedding | None = None

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        if self.pending is None:
            super().set_image(image, image_format)
            return
        emb, self.pending = self.pending, None
        if tuple(image.shape[:2]) != emb.original_size:
            raise RuntimeError(
                f"embedding of a {emb.original_size} image given for a {image.shape[:2]} crop"
            )
        self.reset_image()
        self.original_size = emb.original_size
        self.input_size = emb.input_size
        self.features = emb.features
        self.is_image_set = True


class MaskGenerator(SamAutomaticMaskGenerator):
    """segment-anything's automatic mask generator fed by a batched image encoder."""

    def __init__(self, model: Sam, params: MaskParams):
        super().__init__(model, **params.kwargs())
        self.predictor = _EmbeddingPredictor(model)

    def generate_from(self, image: np.ndarray, embedding: Embedding) -> list[dict[str, Any]]:
        """Stock ``generate(image)`` records, reusing ``embedding`` of this image."""
        self.predictor.pending = embedding
        try:
            return self.generate(image)
        finally:
            self.predictor.pending = None

    def _process_batch(
        self,
        points: np.ndarray,
        im_size: tuple[int, ...],
        crop_box: list[int],
        orig_size: tuple[int, ...],
    ) -> MaskData:
        """segment-anything 1.0's ``_process_batch`` line for line, except that masks
        are run-length encoded by :func:`masks_to_rle` (one device-to-host copy per
        batch; stock loops over the masks and rescans every change index for each)."""
        orig_h, orig_w = orig_size
        transformed = self.predictor.transform.apply_coords(points, im_size)
        in_points = torch.as_tensor(transformed, device=self.predictor.device)
        in_labels = torch.ones(in_points.shape[0], dtype=torch.int, device=in_points.device)
        masks, iou_preds, _ = self.predictor.predict_torch(
            in_points[:, None, :], in_labels[:, None], multimask_output=True, return_logits=True
        )
        data = MaskData(
            masks=masks.flatten(0, 1),
            iou_preds=iou_preds.flatten(0, 1),
            points=torch.as_tensor(points.repeat(masks.shape[1], axis=0)),
        )
        del masks
        if self.pred_iou_thresh > 0.0:
            data.filter(data["iou_preds"] > self.pred_iou_thresh)
        threshold = self.predictor.model.mask_threshold
        data["stability_score"] = calculate_stability_score(
            data["masks"], threshold, self.stability_score_offset
        )
        if self.stability_score_thresh > 0.0:
            data.filter(data["stability_score"] >= self.stability_score_thresh)
        data["masks"] = data["masks"] > threshold
        data["boxes"] = batched_mask_to_box(data["masks"])
        keep = ~is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, orig_w, orig_h])
        if not torch.all(keep):
            data.filter(keep)
        data["masks"] = uncrop_masks(data["masks"], crop_box, orig_h, orig_w)
        data["rles"] = masks_to_rle(data["masks"])
        del data["masks"]
        return data


def masks_to_rle(masks: torch.Tensor) -> list[dict[str, Any]]:
    """Uncompressed column-major RLEs of ``bool [B, H, W]`` masks.

    The same runs as ``segment_anything.utils.amg.mask_to_rle_pytorch`` (``size``
    ``[H, W]``; ``counts`` start with a run of zeros, possibly empty), with ``counts`` as
    ``int64`` arrays instead of lists.
    """
    b, h, w = masks.shape
    if b == 0:
        return []
    flat = masks.permute(0, 2, 1).flatten(1)
    change = (flat[:, 1:] ^ flat[:, :-1]).nonzero()  # [M, 2], sorted by mask
    per_mask = torch.bincount(change[:, 0], minlength=b).cpu().numpy()
    ends = (change[:, 1] + 1).cpu().numpy()
    first = flat[:, 0].cpu().numpy()
    out = []
    for i, cuts in enumerate(np.split(ends, np.cumsum(per_mask)[:-1])):
        counts = np.diff(np.concatenate(([0], cuts, [h * w])))
        if first[i]:
            counts = np.concatenate(([0], counts))
        out.append({"size": [h, w], "counts": counts})
    return out


def record_mask(record: dict[str, Any]) -> np.ndarray:
    """``bool [H, W]`` mask of one generator record (uncompressed column-major RLE).

    Same result as ``segment_anything.utils.amg.rle_to_mask``, without its Python loop.
    """
    h, w = record["segmentation"]["size"]
    counts = np.asarray(record["segmentation"]["counts"], np.int64)
    values = np.arange(counts.size) % 2 == 1  # runs alternate 0, 1, 0, ... from a 0 run
    return np.repeat(values, counts).reshape(w, h).T


def encode_images(model: Sam, images: list[np.ndarray]) -> list[Embedding]:
    """Run the image encoder once on a batch.

    ``images``: ``uint8 [H, W, 3]`` RGB of any sizes. Each is resized and padded exactly
    as ``SamPredictor.set_image`` does (``ResizeLongestSide`` then ``Sam.preprocess``).
    """
    if not images:
        return []
    transform = ResizeLongestSide(model.image_encoder.img_size)
    inputs, sizes = [], []
    for image in images:
        resized = transform.apply_image(image)
        x = torch.as_tensor(resized, device=model.device).permute(2, 0, 1).contiguous()
        inputs.append(model.preprocess(x[None]))
        sizes.append(tuple(resized.shape[:2]))
    with torch.inference_mode():
        features = model.image_encoder(torch.cat(inputs))
    return [
        Embedding(features[i : i + 1], sizes[i], tuple(image.shape[:2]))
        for i, image in enumerate(images)
    ]


def generate_stock(model: Sam, image: np.ndarray, params: MaskParams) -> list[dict[str, Any]]:
    """Masks of one image by stock ``SamAutomaticMaskGenerator(...).generate(image)``."""
    with torch.inference_mode():
        return SamAutomaticMaskGenerator(model, **params.kwargs()).generate(image)


def generate_batched(
    model: Sam, images: list[np.ndarray], params: MaskParams
) -> list[list[dict[str, Any]]]:
    """Masks of several images: one encoder pass for all, then the stock decoding per
    image. Same records as :func:`generate_stock` (up to float rounding)."""
    generator = MaskGenerator(model, params)
    with torch.inference_mode():
        embeddings = encode_images(model, images)
        return [
            generator.generate_from(im, emb) for im, emb in zip(images, embeddings, strict=True)
        ]
