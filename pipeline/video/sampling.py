"""Choosing T frames of a video from its frame-difference curve.

``diff[i]`` is the mean absolute luma difference between frame i and frame i-1
(``diff[0] = 0``). Every sampler returns T sorted frame indices in ``[0, n)``; when the
video has fewer than T frames, indices repeat (the caller records ``padded``).
"""

from __future__ import annotations

import numpy as np

STRATEGIES = ("uniform", "random", "difference", "cumulative", "mixed", "linspace")


def frame_differences(luma: np.ndarray) -> np.ndarray:
    """``[n]`` float32 curve from ``[n, h, w]`` luma frames."""
    if len(luma) == 0:
        return np.zeros(0, np.float32)
    d = np.abs(np.diff(luma.astype(np.float32), axis=0)).mean(axis=(1, 2))
    return np.concatenate([[0.0], d]).astype(np.float32)


def _segments(n: int, t: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n, t + 1)
    return [
        (int(np.floor(a)), max(int(np.floor(a)) + 1, int(np.floor(b))))
        for a, b in zip(edges, edges[1:], strict=False)
    ]


def uniform(n: int, t: int) -> list[int]:
    """Centres of T equal segments."""
    return [min(n - 1, int((k + 0.5) * n / t)) for k in range(t)]


def linspace(n: int, t: int) -> list[int]:
    """``round(linspace(0, n - 1, t))`` (numpy rounding, halves to even): the indices the
    Q-CLIP authors' released data loader reads, first and last frame included. On fewer
    than ``t`` frames it repeats indices the same way that loader does."""
    return [int(i) for i in np.linspace(0, n - 1, t).round().astype(int)]


def random_frames(n: int, t: int, seed: int) -> list[int]:
    """One random frame per segment (seeded: the same video gives the same frames)."""
    rng = np.random.default_rng(seed)
    return [min(n - 1, int(rng.integers(a, b))) for a, b in _segments(n, t)]


def difference(diff: np.ndarray, t: int) -> list[int]:
    """The frame of largest difference in each of T equal segments (first on ties)."""
    n = len(diff)
    return [min(n - 1, a + int(np.argmax(diff[a:b]))) for a, b in _segments(n, t)]


def cumulative(diff: np.ndarray, t: int) -> list[int]:
    """Frames at equal quantiles of the cumulative difference (uniform if static)."""
    n = len(diff)
    total = float(diff.sum())
    if total <= 0:
        return uniform(n, t)
    cum = np.cumsum(diff) / total
    targets = (np.arange(t) + 0.5) / t
    chosen = sorted({min(n - 1, int(np.searchsorted(cum, q))) for q in targets})
    # one dominant cut puts several quantiles on one frame: fill with distinct frames
    # (segment centres first) so no frame is taken twice while others exist
    for extra in [*uniform(n, t), *range(n)]:
        if len(chosen) >= t:
            break
        if extra not in chosen:
            chosen = sorted([*chosen, extra])
    return chosen


def mixed(diff: np.ndarray, t: int) -> list[int]:
    """Half the frames by difference, half uniform (anchors coverage of static parts)."""
    n = len(diff)
    k = t // 2
    chosen = sorted(set(difference(diff, k)) | set(uniform(n, t - k)))
    for extra in uniform(n, t):
        if len(chosen) >= t:
            break
        if extra not in chosen:
            chosen = sorted([*chosen, extra])
    return (chosen + chosen[-1:] * t)[:t]


def sample(diff: np.ndarray, t: int, strategy: str, seed: int = 0) -> tuple[list[int], bool]:
    """``(indices, padded)``: T sorted frame indices by ``strategy``."""
    n = len(diff)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown frame strategy '{strategy}' (one of {', '.join(STRATEGIES)})")
    if n == 0:
        raise ValueError("no frames to sample")
    if strategy == "linspace":
        return linspace(n, t), n < t
    if n < t:
        idx = sorted(int(i) for i in np.floor(np.arange(t) * n / t))
        return idx, True
    if strategy == "uniform":
        idx = uniform(n, t)
    elif strategy == "random":
        idx = random_frames(n, t, seed)
    elif strategy == "difference":
        idx = difference(diff, t)
    elif strategy == "cumulative":
        idx = cumulative(diff, t)
    else:
        idx = mixed(diff, t)
    return sorted(idx), False
