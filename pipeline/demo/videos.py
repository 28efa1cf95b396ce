"""The built-in ``demo-video`` set: short synthetic x264 clips with known distortions.

12 moving contents at half contrast, each over a fine drifting texture (as natural video
has texture, so blur is visible on every content); each as a clean reference plus blur /
colour noise (3-pixel grain) / compression / frame-stutter at 3 levels (12 x 13 = 156 clips
of 2 s, 96x96, 16 fps, H.264 in MP4, encoded by PyAV with one thread so the bytes are
reproducible). Layout::

    videos/<content>_ref.mp4
    videos/<content>_<kind><level>.mp4    kind in blur|noise|compression|stutter, level 1..3
    labels.txt                            videos/x.mp4, duration, fps, mos   (one per line)
    mos.csv                               video,content,distortion,level,mos

MOS (1–5, higher is better)::

    mos = clip(1 + 3.8 * (1 - weight[kind] * level / 3) + N(0, 0.08), 1, 5)

with weight = blur 0.9, noise 0.8, compression 0.95, stutter 0.7 (level 0 = reference).
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from qfeat.pipeline.demo.common import SEED, demo_mos, write_atomically

SIZE = 96
FPS = 16
N_FRAMES = 32
KINDS = ("blur", "noise", "compression", "stutter")
WEIGHTS = {"blur": 0.9, "noise": 0.8, "compression": 0.95, "stutter": 0.7}
LEVELS = (1, 2, 3)
CONTENTS = (
    "ball",
    "two-balls",
    "pan-stripes",
    "rotating-bar",
    "zoom-rings",
    "moving-checker",
    "drift-clouds",
    "colour-cycle",
    "growing-disc",
    "scroll-gradient",
    "wave-grating",
    "sliding-square",
)

_BLUR_RADIUS = (1.0, 2.0, 3.5)
_NOISE_SIGMA = (0.05, 0.11, 0.2)
# Noise is colour noise with a 3-pixel grain: one sample per pixel of the tiny preset's
# 32-pixel input. Per-pixel noise at 96 px was mostly removed by x264 and the 3x downscale.
# Luma carries 0.3 of sigma, chroma all of it, as in low-light sensor noise; the texture is
# achromatic, so noise differs from texture by more than its energy.
_NOISE_GRAIN = 3
_NOISE_LUMA = 0.3
_CRF = (40, 46, 51)
_HOLD = (2, 4, 8)
_CLEAN_CRF = 18
DETAIL = 0.5  # contrast of the fine texture every content carries
# Contrast of the moving content around mid-grey. At half contrast the texture, not the
# content's edges, sets each clip's fine-detail energy, so references of all contents have
# similar detail (as natural videos share image statistics) and a distortion's change to it
# compares across contents.
CONTRAST = 0.5
#: generator version in the set's marker (older sets are regenerated): 2 added the
#: texture; 3 added colour-noise grain and half-contrast content
VERSION = 3


def _frame(content: str, t: float, clouds: np.ndarray) -> np.ndarray:
    """Frame at time ``t`` in [0, 1) of one content, HxWx3 float in [0, 1]."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / (SIZE - 1)
    base = np.stack([0.2 + 0.3 * y, 0.3 + 0.2 * x, 0.5 * np.ones_like(x)], axis=-1)
    ang = 2 * np.pi * t
    if content in ("ball", "two-balls"):
        for k, phase in enumerate((0.0, 0.5) if content == "two-balls" else (0.0,)):
            cx = 0.5 + 0.35 * np.cos(ang + phase * 2 * np.pi)
            cy = 0.5 + 0.35 * np.sin(2 * ang + phase * 2 * np.pi)
            base[np.hypot(x - cx, y - cy) < 0.12] = (1.0, 0.8 - 0.5 * k, 0.1)
    elif content == "pan-stripes":
        base[..., 0] = (np.sin((x + t) * 2 * np.pi * 5) > 0) * 0.9
    elif content == "rotating-bar":
        d = np.abs((x - 0.5) * np.sin(ang) - (y - 0.5) * np.cos(ang))
        base[(d < 0.05) & (np.hypot(x - 0.5, y - 0.5) < 0.45)] = (0.95, 0.95, 0.95)
    elif content == "zoom-rings":
        r = np.hypot(x - 0.5, y - 0.5)
        base[..., 1] = 0.5 + 0.5 * np.cos(r * (20 + 40 * t))
    elif content == "moving-checker":
        base[..., 2] = ((np.floor((x + t) * 6) + np.floor(y * 6)) % 2) * 0.9
    elif content == "drift-clouds":
        shift = int(t * clouds.shape[1] / 2)
        base[..., 0] = np.roll(clouds, shift, axis=1)[:SIZE, :SIZE]
    elif content == "colour-cycle":
        base = np.stack([0.5 + 0.5 * np.sin(ang + k * 2.1 + 3 * x) for k in range(3)], axis=-1)
    elif content == "growing-disc":
        base[np.hypot(x - 0.5, y - 0.5) < 0.05 + 0.4 * t] = (0.9, 0.4, 0.6)
    elif content == "scroll-gradient":
        base[..., 0] = (y + t) % 1.0
    elif content == "wave-grating":
        base[..., 1] = 0.5 + 0.5 * np.sin(2 * np.pi * (6 * x + 2 * np.sin(ang + 4 * y)))
    elif content == "sliding-square":
        x0 = 0.1 + 0.6 * abs(np.sin(np.pi * t))
        base[(x >= x0) & (x < x0 + 0.25) & (y >= 0.35) & (y < 0.6)] = (0.1, 0.9, 0.3)
    else:  # pragma: no cover - guarded by CONTENTS
        raise ValueError(content)
    return np.clip(base, 0.0, 1.0)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _texture(rng: np.random.Generator, cells: tuple[int, int]) -> np.ndarray:
    """A (SIZE, 2*SIZE) texture in [0, 1]: uniform noise on ``cells``, bicubic-upscaled."""
    noise = (rng.uniform(0, 1, cells) * 255).astype(np.uint8)
    img = Image.fromarray(noise).resize((2 * SIZE, SIZE), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float64) / 255.0


def _noise(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """(SIZE, SIZE, 3) RGB noise of ``_NOISE_GRAIN``-pixel grain: Y, U and V samples of
    standard deviation sigma (Y scaled by ``_NOISE_LUMA``), turned into RGB (BT.601)."""
    cells = -(-SIZE // _NOISE_GRAIN)
    y, u, v = rng.normal(0, sigma, (3, cells, cells))
    y = y * _NOISE_LUMA
    rgb = np.stack([y + 1.402 * v, y - 0.344 * u - 0.714 * v, y + 1.772 * u], axis=-1)
    return rgb.repeat(_NOISE_GRAIN, axis=0).repeat(_NOISE_GRAIN, axis=1)[:SIZE, :SIZE]


def clip_frames(content: str, kind: str, level: int, rng: np.random.Generator) -> list:
    """The uint8 frames of one clip (distortions other than compression applied)."""
    texture_rng = np.random.default_rng([SEED, CONTENTS.index(content)])  # same per content
    clouds = _texture(texture_rng, (6, 12))
    detail = _texture(texture_rng, (24, 48))
    frames = []
    for n in range(N_FRAMES):
        shown = n
        if kind == "stutter":
            hold = _HOLD[level - 1]
            shown = (n // hold) * hold
        img = 0.5 + CONTRAST * (_frame(content, shown / N_FRAMES, clouds) - 0.5)
        # fine texture drifting across every content: without it most contents are flat
        # colour, blur changes nothing on them and no frame-level model can learn the set
        shift = int(shown / N_FRAMES * SIZE / 2)
        img = img + DETAIL * (np.roll(detail, shift, axis=1)[:SIZE, :SIZE, None] - 0.5)
        if kind == "blur":
            pil = Image.fromarray(_to_uint8(img)).filter(
                ImageFilter.GaussianBlur(_BLUR_RADIUS[level - 1])
            )
            frames.append(np.asarray(pil))
        elif kind == "noise":
            frames.append(_to_uint8(img + _noise(rng, _NOISE_SIGMA[level - 1])))
        else:
            frames.append(_to_uint8(img))
    return frames


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range RGB -> planar yuv420p laid out as PyAV expects, (H*3/2, W).

    Done in numpy because the RGB->YUV conversion PyAV does inside ``encode`` was seen
    to give different bytes from run to run; H and W must be multiples of 4.
    """
    x = rgb.astype(np.float64) / 255.0
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128 + 112.0 * r - 93.786 * g - 18.214 * b
    h, w = y.shape

    def half(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).reshape(h // 4, w)

    planes = np.concatenate([y, half(u), half(v)], axis=0)
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8)


def encode_mp4(path: Path, frames: list, crf: int, fps: int = FPS) -> None:
    """Encode uint8 RGB frames as H.264 (yuv420p) in MP4, reproducibly.

    One thread and no macroblock-tree rate control: with mbtree on, x264 gave
    different bytes for the same frames now and then (seen here with libx264 in
    PyAV 18); with it off, repeated encodes are byte-identical.
    """
    import av  # here, not at import: starting the command must not load the codecs

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "threads": "1",
            "x264-params": "mbtree=0",
        }
        stream.codec_context.thread_count = 1
        stream.codec_context.time_base = Fraction(1, fps)
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(pixels), format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def generate(root: Path) -> int:
    """Write the demo video set into ``root`` (atomically); returns the clip count."""

    def build(tmp: Path) -> int:
        (tmp / "videos").mkdir(parents=True)
        mos_rng = np.random.default_rng(SEED + 1)
        rows = []
        for ci, content in enumerate(CONTENTS):
            jobs = [("ref", 0)] + [(k, lv) for k in KINDS for lv in LEVELS]
            for kind, level in jobs:
                rng = np.random.default_rng([SEED, ci, level, len(kind)])
                frames = clip_frames(content, kind, level, rng)
                crf = _CRF[level - 1] if kind == "compression" else _CLEAN_CRF
                name = f"videos/{content}_{kind if level else 'ref'}{level or ''}.mp4"
                encode_mp4(tmp / name, frames, crf)
                weight = WEIGHTS[kind] if level else 0.0
                mos = demo_mos(weight * level / len(LEVELS), mos_rng)
                rows.append((name, content, kind if level else "none", level, f"{mos:.4f}"))
        with open(tmp / "mos.csv", "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(("video", "content", "distortion", "level", "mos"))
            w.writerows(rows)
        duration = N_FRAMES / FPS
        with open(tmp / "labels.txt", "w") as f:
            f.writelines(f"{r[0]}, {duration:g}, {FPS}, {r[4]}\n" for r in rows)
        return len(rows)

    return write_atomically(root, build, VERSION)
