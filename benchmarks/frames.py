"""Frame-difference pass: low resolution (what the frames stage does) vs full resolution.

Four generated 1280x720 H.264 clips of 90 frames (moving content). Both passes decode
every frame with decord and compute the same mean-absolute luma difference curve; the
low-resolution pass lets the decoder scale to a 64-pixel short side.
``frames_lowres_vs_fullres`` = full-resolution time / low-resolution time. (Per-stage
throughput on the demo sets: ``benchmarks/stages.py``.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import options, record
from qfeat.pipeline.demo.videos import encode_mp4
from qfeat.pipeline.video.reader import DecordReader, to_luma
from qfeat.pipeline.video.sampling import frame_differences


def _clip(path: Path, seed: int, n: int = 90, size: tuple[int, int] = (720, 1280)) -> None:
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0, 255, 3).astype(np.float32)
    frames = []
    for t in range(n):
        img = np.empty((h, w, 3), np.float32)
        for c in range(3):
            img[..., c] = base[c] + 60 * np.sin((x + 7 * t * (c + 1)) / 40 + y / 55)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    encode_mp4(path, frames, crf=23)


def _fullres_diff(path: Path) -> np.ndarray:
    reader = DecordReader(path)
    frames = reader.frames(list(range(reader.info.n_frames)))
    return frame_differences(to_luma(frames))


def _lowres_diff(path: Path) -> np.ndarray:
    return frame_differences(DecordReader(path).lowres_luma(64))


def run(clips: int = 4, frames: int = 90, size: tuple[int, int] = (720, 1280)) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"clip{i}.mp4" for i in range(clips)]
        for i, p in enumerate(paths):
            _clip(p, i, frames, size)
        timings = {}
        for name, fn in (("lowres", _lowres_diff), ("fullres", _fullres_diff)):
            t0 = time.perf_counter()
            for p in paths:
                fn(p)
            timings[name] = time.perf_counter() - t0
    return {
        "lowres_videos_per_s": clips / timings["lowres"],
        "fullres_videos_per_s": clips / timings["fullres"],
        "frames_lowres_vs_fullres": timings["fullres"] / timings["lowres"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    args = options(parser, argv)
    r = run(1, 12, (144, 256)) if args.dry_run else run(args.clips)
    record("ratios", {"frames_lowres_vs_fullres": round(r["frames_lowres_vs_fullres"], 2)})
    record("frames", {k: round(v, 3) for k, v in r.items()})
    print(f"720p difference pass, low-res: {r['lowres_videos_per_s']:.2f} videos/s")
    print(f"720p difference pass, full-res: {r['fullres_videos_per_s']:.2f} videos/s")
    print(f"frames_lowres_vs_fullres = {r['frames_lowres_vs_fullres']:.2f}")


if __name__ == "__main__":
    main()
