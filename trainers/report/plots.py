"""Pictures for the report, as encoded bytes (PNG for charts, JPEG for photographs).

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``, no
pyplot state), so making a report never opens a window or touches global backends.
"""

from __future__ import annotations

import io

import numpy as np

THUMB_SIDE = 320  # long side of an image thumbnail, pixels
FRAME_SIDE = 160  # long side of a video frame thumbnail
JPEG_QUALITY = 80
CMAP = "viridis"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def figure_bytes(fig, fmt: str = "png") -> bytes:
    buf = io.BytesIO()
    kwargs = {"pil_kwargs": {"quality": JPEG_QUALITY}} if fmt == "jpeg" else {}
    fig.savefig(buf, format=fmt, **kwargs)
    return buf.getvalue()


def resize(image: np.ndarray, long_side: int, nearest: bool = False) -> np.ndarray:
    """``image`` (``[H, W]`` or ``[H, W, 3]`` uint8) scaled so its long side is
    ``long_side`` pixels (up or down)."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = long_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, method))


def jpeg(image: np.ndarray, long_side: int | None = None) -> bytes:
    """``uint8 [H, W, 3]`` RGB as JPEG bytes, downscaled to ``long_side`` when larger."""
    from PIL import Image

    if long_side is not None and max(image.shape[:2]) > long_side:
        image = resize(image, long_side)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def weight_norm(weights: list[float]) -> tuple[float, float]:
    """Colour range ``(vmin, vmax)`` of one image's region weights (never empty)."""
    lo, hi = (min(weights), max(weights)) if weights else (0.0, 1.0)
    if hi - lo < 1e-3:  # (near-)equal weights: centre them in a small range
        lo, hi = lo - 0.05, hi + 0.05
    return lo, hi


def weight_colours(weights: list[float]) -> list[str]:
    """``#rrggbb`` colour of each weight on the image's colour scale."""
    from matplotlib import colormaps, colors

    lo, hi = weight_norm(weights)
    cmap = colormaps[CMAP]
    return [colors.to_hex(cmap((w - lo) / (hi - lo))) for w in weights]


def region_overlay(
    picture: np.ndarray, labels: np.ndarray, weights: dict[int, float], names: dict[int, str]
) -> bytes:
    """JPEG: ``picture`` ``[H, W, 3]`` with each region of ``labels`` ``[H, W]`` (region
    id per pixel, -1 = none) tinted by its weight, region borders in white, each region's
    name at its most interior point, and a colour bar as the legend."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from scipy import ndimage

    lo, hi = weight_norm(list(weights.values()))
    cmap = colormaps[CMAP]
    tint = np.zeros((*labels.shape, 3), np.float32)
    alpha = np.zeros(labels.shape, np.float32)
    for rid, w in weights.items():
        inside = labels == rid
        tint[inside] = cmap((w - lo) / (hi - lo))[:3]
        alpha[inside] = 0.55
    out = picture.astype(np.float32) / 255.0
    out = out * (1 - alpha[..., None]) + tint * alpha[..., None]
    border = np.zeros(labels.shape, bool)
    border[1:] |= labels[1:] != labels[:-1]
    border[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    out[border] = 0.4 * out[border] + 0.6  # light borders, the tint stays visible
    h, w = labels.shape
    fig = _figure(w / 100 + 1.3, h / 100 + 0.2)
    ax = fig.add_axes((0.01, 0.01, w / 100 / (w / 100 + 1.3), 0.98))
    ax.imshow(np.clip(out, 0, 1), interpolation="nearest")
    ax.set_axis_off()
    for rid, name in names.items():
        inside = labels == rid
        if not inside.any():
            continue
        depth = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        box = {"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.6, "lw": 0}
        ax.text(x, y, name, ha="center", va="center", fontsize=8, color="white", bbox=box)
    cax = fig.add_axes((1 - 0.9 / (w / 100 + 1.3), 0.08, 0.12 / (w / 100 + 1.3), 0.84))
    bar = fig.colorbar(ScalarMappable(Normalize(lo, hi), cmap), cax=cax)
    bar.set_label("region weight", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return figure_bytes(fig, "jpeg")


def difference_curve(diff: np.ndarray, chosen: list[int], fps: float) -> bytes:
    """PNG: the frame-difference curve with the chosen frames marked."""
    fig = _figure(6.0, 2.2)
    ax = fig.add_subplot()
    frames = np.arange(len(diff))
    ax.plot(frames, diff, color="#4a6fa5", lw=1.2, label="mean |Δ luma|")
    picked = sorted(set(int(i) for i in chosen if 0 <= int(i) < len(diff)))
    ax.scatter(picked, np.asarray(diff, float)[picked], color="#d1495b", zorder=3, s=22,
               label="chosen frames")  # fmt: skip
    for i in picked:
        ax.axvline(i, color="#d1495b", alpha=0.25, lw=0.8)
    ax.set_xlabel(f"frame ({fps:.3g} fps)" if fps else "frame")
    ax.set_ylabel("difference")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return figure_bytes(fig)


def similarity_bars(levels: tuple[str, ...], similarities: list[float]) -> bytes:
    """PNG: cosine similarity of the video to each quality prompt."""
    fig = _figure(3.6, 2.2)
    ax = fig.add_subplot()
    colours = ["#d1495b", "#edae49", "#c9c9c9", "#66a182", "#00798c"]
    ax.bar(range(len(levels)), similarities, color=colours[: len(levels)])
    ax.set_xticks(range(len(levels)), levels, fontsize=8)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylabel("cosine similarity", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return figure_bytes(fig)
