"""Video decoding speed of the installed decord distribution (decord or decord2).

Both distributions install the module ``decord``, so one process measures one of them:
run this once with each installed (``pip install decord2`` replaces decord) and compare
the two sections it records, ``decode_<distribution>``. The same clips both times: the
first ``--clips`` demo-video clips and ``--real`` generated 1280x720 H.264 clips (90
frames of moving content). Per clip: the frames stage's low-resolution luma pass over
every frame, and the clip stage's full-size decode of 8 chosen frames.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmarks.common import demo_root, options, record


def distribution() -> str:
    """``decord2`` or ``decord``: the distribution that provides ``import decord``."""
    for name in ("decord2", "decord"):
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            continue
    return "none"


def clip_seconds(paths: list[Path]) -> dict[str, float]:
    from qfeat.pipeline.video.reader import DecordReader

    lowres = full = 0.0
    for path in paths:
        t0 = time.perf_counter()
        reader = DecordReader(path)
        reader.lowres_luma(64)
        t1 = time.perf_counter()
        n = reader.info.n_frames
        DecordReader(path).frames([round(i * (n - 1) / 7) for i in range(8)])
        lowres, full = lowres + t1 - t0, full + time.perf_counter() - t1
    return {"lowres_s_per_clip": lowres / len(paths), "chosen_s_per_clip": full / len(paths)}


def run(clips: int, real: int, size: tuple[int, int] = (720, 1280)) -> dict[str, dict]:
    from benchmarks.frames import _clip
    from qfeat.pipeline.datasets import open_dataset

    with tempfile.TemporaryDirectory() as tmp:
        adapter = open_dataset("demo-video", demo_root(Path(tmp), "demo-video"))
        adapter.prepare()
        demo = [i.path for i in adapter.list_items().items[:clips]]
        made = [Path(tmp) / f"real{i}.mp4" for i in range(real)]
        for i, path in enumerate(made):
            _clip(path, i, 90, size)
        return {"demo": clip_seconds(demo), "720p": clip_seconds(made)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--real", type=int, default=3)
    args = options(parser, argv)
    r = run(2, 1, (72, 128)) if args.dry_run else run(args.clips, args.real)
    name = distribution()
    record(f"decode_{name.split()[0]}", {"distribution": name, **r})
    for kind, v in r.items():
        print(f"{name} {kind}: low-res pass {v['lowres_s_per_clip']:.3f} s/clip, "
              f"8 chosen frames {v['chosen_s_per_clip']:.3f} s/clip")  # fmt: skip


if __name__ == "__main__":
    main()
