"""What the describe model sees: the region view and the question (text and chat turns).

``PROMPT_VERSION`` names the wording below (a hash of :func:`prompt_texts`) and is stored
in every describe row. The texts themselves are part of the describe stage's fingerprint
(``DescribeStage.constants``), so editing them never reuses answers to the old wording:
there is no version to bump.

Region view (:func:`region_view`): the image cropped to the region mask's bounding box
grown by a margin of ``margin`` x its longer side (+2 px) on every side, clipped to the
image; pixels outside the mask set to grey 128; downscaled so its long side is at most
``max_side`` (never upscaled: the model's processor sizes it for the model); padded with
grey to an aspect ratio of at most ``MAX_ASPECT`` (vision processors refuse extreme
strips).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from qfeat.pipeline.levels import DIMENSIONS, LEVELS

GREY = 128
MAX_ASPECT = 20

# generate mode: one JSON answer per region
QUESTION = (
    "The picture is one region of a photograph; pixels outside the region are grey. "
    "Describe what the region shows in a few words, and rate the region's colour, noise, "
    "artifact (compression artifacts), blur and overall quality, each with exactly one of "
    "the words bad, poor, fair, good, excellent (excellent = no visible problem, "
    "bad = severe problem). Answer with JSON only, in this form: "
    '{"content": "<a few words>", "colour": "<level>", "noise": "<level>", '
    '"artifact": "<level>", "blur": "<level>", "overall": "<level>"}'
)

# logprob mode: one question per region, then the answer is started for each dimension
# and the model's next-token probabilities of the five level words are read.
RATE_QUESTION = (
    "The picture is one region of a photograph; pixels outside the region are grey. "
    "Rate the region's colour, noise, artifact (compression artifacts), blur and overall "
    "quality with the words bad, poor, fair, good, excellent (excellent = no visible "
    "problem, bad = severe problem)."
)
ANSWER_START = "The {dimension} quality of this region is"
# The level words as they follow ANSWER_START: with a leading space; the model's first
# token of each is scored (the level words must start with distinct tokens).
LEVEL_CONTINUATIONS = tuple(f" {word}" for word in LEVELS)


def chat_messages(question: str) -> list[dict[str, Any]]:
    """One user turn: the image, then ``question`` (for ``apply_chat_template``)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def generate_prompt(processor) -> str:
    """The full text of a generate-mode prompt (one image placeholder), chat template applied."""
    return processor.apply_chat_template(
        chat_messages(QUESTION), add_generation_prompt=True, tokenize=False
    )


def logprob_prompts(processor) -> dict[str, str]:
    """Per dimension, the prompt that ends right before the level word."""
    head = processor.apply_chat_template(
        chat_messages(RATE_QUESTION), add_generation_prompt=True, tokenize=False
    )
    return {d: head + ANSWER_START.format(dimension=d) for d in DIMENSIONS}


def prompt_texts() -> str:
    """Every wording this module sends, joined (hashed into the describe fingerprint)."""
    return "\n".join((QUESTION, RATE_QUESTION, ANSWER_START, *LEVEL_CONTINUATIONS))


PROMPT_VERSION = "describe-" + hashlib.sha256(prompt_texts().encode()).hexdigest()[:12]


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` (exclusive ends) of the True pixels of ``bool [H, W]``."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """``bool [height, width]``: nearest-neighbour resize of ``bool [h, w]``."""
    h, w = mask.shape
    if (h, w) == (height, width):
        return mask
    rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(np.intp)
    cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(np.intp)
    return mask[rows[:, None], cols[None, :]]


def _pad_aspect(view: np.ndarray) -> np.ndarray:
    h, w = view.shape[:2]
    if max(h, w) <= MAX_ASPECT * min(h, w):
        return view
    th, tw = max(h, -(-w // MAX_ASPECT)), max(w, -(-h // MAX_ASPECT))
    out = np.full((th, tw, 3), GREY, np.uint8)
    y, x = (th - h) // 2, (tw - w) // 2
    out[y : y + h, x : x + w] = view
    return out


def region_view(
    image: np.ndarray,
    mask: np.ndarray,
    bbox: tuple[int, int, int, int] | None = None,
    max_side: int = 448,
    margin: float = 0.1,
) -> np.ndarray:
    """The picture the model sees of one region: ``uint8 [h, w, 3]``, ``max(h, w) <= max_side``.

    ``image``: ``uint8 [H, W, 3]`` RGB. ``mask``: ``bool [H, W]`` (resize it first with
    :func:`resize_mask` if the regions were computed at another size). ``bbox``
    ``(x, y, w, h)`` is only used when the mask is empty (then the view is all grey).
    ``margin``: fraction (0..1) of the box's longer side added around it.
    """
    height, width = image.shape[:2]
    box = mask_box(mask)
    if box is None:
        x, y, w, h = (int(v) for v in (bbox if bbox is not None else (0, 0, width, height)))
        box = (x, y, x + max(w, 1), y + max(h, 1))
    x0, y0, x1, y1 = box
    pad = int(round(margin * max(x1 - x0, y1 - y0))) + 2
    x0, y0 = max(0, min(x0 - pad, width - 1)), max(0, min(y0 - pad, height - 1))
    x1, y1 = min(width, max(x1 + pad, x0 + 1)), min(height, max(y1 + pad, y0 + 1))
    view = image[y0:y1, x0:x1].copy()
    view[~mask[y0:y1, x0:x1]] = GREY
    long_side = max(view.shape[:2])
    if long_side > max_side:
        from PIL import Image

        scale = max_side / long_side
        size = (max(1, round(view.shape[1] * scale)), max(1, round(view.shape[0] * scale)))
        view = np.asarray(Image.fromarray(view).resize(size, Image.Resampling.BICUBIC))
    return _pad_aspect(view)
