"""The built-in ``demo`` image set: synthetic contents, four distortion kinds, five levels.

Everything is a pure function of fixed seeds, so two generations give the same bytes.
Layout written under the dataset root::

    images/<content>_ref.png            one pristine picture per content
    images/<content>_<kind><level>.png  kind in blur|noise|jpeg|exposure, level 1..5
    mos.csv                             image,content,distortion,level,mos

MOS (1–5, higher is better) is a documented function of the level plus small noise::

    mos = clip(1 + 3.8 * (1 - weight[kind] * level / 5) + N(0, 0.08), 1, 5)

with weight = blur 0.95, noise 0.85, jpeg 0.90, exposure 0.75 and level 0 for references.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from qfeat.pipeline.demo.common import GENERATOR_VERSION, SEED, demo_mos, write_atomically

SIZE = 128
VERSION = GENERATOR_VERSION  #: generator version in the set's marker
KINDS = ("blur", "noise", "jpeg", "exposure")
WEIGHTS = {"blur": 0.95, "noise": 0.85, "jpeg": 0.90, "exposure": 0.75}
LEVELS = (1, 2, 3, 4, 5)

_BLUR_RADIUS = (0.6, 1.2, 2.0, 3.0, 4.5)
_NOISE_SIGMA = (0.03, 0.06, 0.10, 0.15, 0.22)
_JPEG_QUALITY = (50, 25, 12, 6, 2)
_CONTRAST = (0.8, 0.6, 0.45, 0.3, 0.18)
_BRIGHTNESS = (0.08, 0.16, 0.24, 0.32, 0.40)

_PALETTES = [
    ((0.95, 0.85, 0.2), (0.1, 0.2, 0.6)),
    ((0.9, 0.3, 0.3), (0.1, 0.5, 0.3)),
]


def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / (SIZE - 1)
    return x, y


def _mix(t: np.ndarray, pal: tuple) -> np.ndarray:
    a, b = (np.asarray(c, dtype=np.float64) for c in pal)
    return a * t[..., None] + b * (1.0 - t[..., None])


def _content(family: str, variant: int) -> np.ndarray:
    """An HxWx3 float image in [0, 1] for one (family, variant)."""
    x, y = _grid()
    pal = _PALETTES[variant]
    rng = np.random.default_rng([SEED, hash_family(family), variant])
    if family == "checker":
        n = 4 if variant == 0 else 10
        t = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(np.float64)
    elif family == "stripes":
        ang = np.pi / 6 if variant == 0 else 2 * np.pi / 3
        t = (np.sin((x * np.cos(ang) + y * np.sin(ang)) * 2 * np.pi * 6) > 0).astype(float)
    elif family == "grating":
        f = 3 if variant == 0 else 9
        t = 0.5 + 0.5 * np.sin(2 * np.pi * f * x) * np.cos(2 * np.pi * (f / 3) * y)
    elif family == "rings":
        r = np.hypot(x - 0.5, y - 0.5)
        t = 0.5 + 0.5 * np.cos(r * (30 if variant == 0 else 70))
    elif family == "linear":
        t = x if variant == 0 else (x + y) / 2
    elif family == "radial":
        cx, cy = (0.5, 0.5) if variant == 0 else (0.2, 0.8)
        t = np.clip(1 - np.hypot(x - cx, y - cy) * 1.4, 0, 1)
    elif family == "discs":
        t = np.zeros_like(x)
        for _ in range(5 + 6 * variant):
            cx, cy, rad = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
            t[np.hypot(x - cx, y - cy) < rad] = rng.uniform(0.3, 1.0)
    elif family == "boxes":
        t = np.full_like(x, 0.2)
        for _ in range(6 + 8 * variant):
            x0, y0 = rng.uniform(0, 0.8, size=2)
            w, h = rng.uniform(0.05, 0.3, size=2)
            t[(x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)] = rng.uniform(0.4, 1.0)
    elif family == "clouds":
        coarse = rng.uniform(0, 1, size=(4 + 6 * variant,) * 2)
        img = Image.fromarray((coarse * 255).astype(np.uint8)).resize(
            (SIZE, SIZE), Image.Resampling.BICUBIC
        )
        t = np.asarray(img, dtype=np.float64) / 255.0
    elif family == "cells":
        pts = rng.uniform(0, 1, size=(8 + 10 * variant, 2))
        d = np.hypot(x[..., None] - pts[:, 0], y[..., None] - pts[:, 1])
        t = (np.argmin(d, axis=-1) % 5) / 4.0
    elif family == "landscape":
        sky = np.clip(1 - y * 1.6, 0, 1)
        ground = (y > 0.6 + 0.08 * np.sin(x * (6 + 6 * variant))).astype(float)
        sun = (np.hypot(x - 0.7, y - 0.25) < 0.1).astype(float)
        t = np.clip(sky * (1 - ground) + 0.35 * ground + sun, 0, 1)
    elif family == "bars":
        n = 5 if variant == 0 else 12
        t = (np.floor(x * n) / (n - 1)) * (0.6 + 0.4 * y)
    else:  # pragma: no cover - guarded by FAMILIES
        raise ValueError(family)
    return np.clip(_mix(t, pal), 0.0, 1.0)


FAMILIES = (
    "checker",
    "stripes",
    "grating",
    "rings",
    "linear",
    "radial",
    "discs",
    "boxes",
    "clouds",
    "cells",
    "landscape",
    "bars",
)
CONTENTS = tuple(f"{f}-{'ab'[v]}" for f in FAMILIES for v in (0, 1))  # 24 contents


def hash_family(family: str) -> int:
    """A stable small integer per family name (Python's hash() is salted per process)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(family))


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def distort(img: np.ndarray, kind: str, level: int, rng: np.random.Generator) -> np.ndarray:
    """Apply one distortion at level 1..5 to a float image; returns uint8 HxWx3."""
    i = level - 1
    if kind == "blur":
        pil = Image.fromarray(_to_uint8(img)).filter(ImageFilter.GaussianBlur(_BLUR_RADIUS[i]))
        return np.asarray(pil)
    if kind == "noise":
        return _to_uint8(img + rng.normal(0.0, _NOISE_SIGMA[i], size=img.shape))
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(_to_uint8(img)).save(buf, format="JPEG", quality=_JPEG_QUALITY[i])
        buf.seek(0)
        return np.asarray(Image.open(buf).convert("RGB"))
    if kind == "exposure":
        sign = 1.0 if level % 2 else -1.0
        return _to_uint8((img - 0.5) * _CONTRAST[i] + 0.5 + sign * _BRIGHTNESS[i])
    raise ValueError(f"unknown distortion kind {kind!r}")


def generate(root: Path) -> int:
    """Write the demo image set into ``root`` (atomically); returns the item count."""

    def build(tmp: Path) -> int:
        (tmp / "images").mkdir(parents=True)
        mos_rng = np.random.default_rng(SEED)
        rows = []
        for ci, content in enumerate(CONTENTS):
            family, variant = content[:-2], "ab".index(content[-1])
            ref = _content(family, variant)
            jobs = [("ref", 0)] + [(k, lv) for k in KINDS for lv in LEVELS]
            for kind, level in jobs:
                rng = np.random.default_rng(
                    [SEED, ci, KINDS.index(kind) + 1 if level else 0, level]
                )
                pixels = _to_uint8(ref) if level == 0 else distort(ref, kind, level, rng)
                name = f"images/{content}_{kind if level else 'ref'}{level or ''}.png"
                Image.fromarray(pixels).save(tmp / name, format="PNG", optimize=False)
                weight = WEIGHTS[kind] if level else 0.0
                mos = demo_mos(weight * level / 5, mos_rng)
                rows.append((name, content, kind if level else "none", level, f"{mos:.4f}"))
        with open(tmp / "mos.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(("image", "content", "distortion", "level", "mos"))
            w.writerows(rows)
        return len(rows)

    return write_atomically(root, build, VERSION)
