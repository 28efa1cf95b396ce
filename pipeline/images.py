"""Reading any still image as 8-bit RGB, or a clear per-item error.

One reader for every image stage, so regions, describe and backbone see the same pixels:
JPEG, PNG, BMP, TIFF, WebP (whatever Pillow opens); grayscale, CMYK, RGBA/LA (composited
over white), palette and 16-bit images become ``uint8 [H, W, 3]`` RGB; the EXIF
orientation is applied. Very large images are downscaled to ``max_side`` while decoding
where the format allows it (JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale), so a
12000x9000 JPEG never needs its full-size bitmap.

Failures raise :class:`~qfeat.pipeline.stages.base.ItemError` with the status word stored in
the error row: ``missing``, ``empty_file``, ``too_large``, ``decode_error``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from qfeat.errors import ItemError

# what `qfeat predict` takes from a folder or glob for image runs
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

log = logging.getLogger(__name__)

# Pillow refuses images above ~179 M pixels as decompression bombs. We accept up to
# this many pixels (a 20000x20000 scan) and refuse larger ones with a clear reason.
MAX_PIXELS = 400_000_000
_HIGH_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def _to_uint8_gray(img) -> np.ndarray:
    """16-bit / 32-bit / float single-channel images scaled to 0..255 by their range."""
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        top = 1.0 if hi <= 1.0 and lo >= 0.0 else max(hi, 1e-12)
        arr = np.clip(np.nan_to_num(arr) / top, 0.0, 1.0) * 255.0
    else:
        top = 65535.0 if arr.max(initial=0) > 255 or img.mode.startswith("I;16") else 255.0
        arr = np.clip(arr.astype(np.float64) / top * 255.0, 0, 255)
    return np.round(arr).astype(np.uint8)


def _to_rgb(img) -> np.ndarray:
    from PIL import Image

    mode = img.mode
    if mode in _HIGH_BIT_MODES:
        gray = _to_uint8_gray(img)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def open_checked(path: Path):
    """``Image.open(path)`` under qfeat's pixel limit, which replaces Pillow's own
    decompression-bomb guard (so ``datasets check`` and every stage agree on what is too
    large); an ItemError ``too_large`` above it. Only the header is read."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    img = Image.open(path)
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise ItemError(
            "too_large",
            f"{Path(path).name} is {w}x{h} ({w * h / 1e6:.0f} M pixels), above qfeat's "
            f"limit of {MAX_PIXELS / 1e6:.0f} M; downscale it first",
        )
    return img


def open_image(path: Path, max_side: int = 4096) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB with EXIF orientation applied, ``max(H, W) <= max_side``."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise ItemError("missing", f"{path} does not exist")
    if path.is_file() and path.stat().st_size == 0:
        raise ItemError("empty_file", f"{path.name} is empty (0 bytes)")
    try:
        img = open_checked(path)
        with img:
            w, h = img.size
            if max(w, h) > max_side and img.format == "JPEG":
                # decode at a reduced scale directly (1/2..1/8), never the full bitmap
                img.draft("RGB", (max(1, w * max_side // max(w, h)), 1))
            img.load()
            img = ImageOps.exif_transpose(img) or img
            if max(img.size) > max_side:
                scale = max_side / max(img.size)
                size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
                if img.mode in _HIGH_BIT_MODES:
                    img = img.convert("F")
                img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            return _to_rgb(img)
    except ItemError:
        raise
    except UnidentifiedImageError as exc:
        raise ItemError(
            "decode_error", f"{path.name} is not an image Pillow can read ({exc})"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ItemError("decode_error", f"{path.name}: {exc}") from exc
