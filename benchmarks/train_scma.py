"""SCMA training from the cache vs. end to end (decode + full CLIP every step).

The first ``--videos`` demo-video clips get the frames and clip stages (tiny preset) in
a temporary cache. The same adapter (same seed, rows, epochs) is trained twice: from the
cache (the last K blocks run on cached hidden states, what ``qfeat train scma`` does)
and end to end (every step decodes the batch's chosen frames at full size, squashes
them and runs the whole CLIP vision tower with the adapters).
``train_scma_cache_vs_e2e`` = end-to-end seconds per epoch / cache seconds per epoch.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import demo_root, options, record


def build_cache(tmp: Path, videos: int) -> Path:
    from qfeat.pipeline.runner import RunRequest, prepare, run

    cache = tmp / "cache"
    request = RunRequest(
        dataset="demo-video",
        root=demo_root(tmp, "demo-video"),
        cache_dir=cache,
        limit=videos,
        workers=1,
    )
    run(prepare(request))
    return cache


def run(videos: int, epochs: int) -> dict[str, float]:
    from qfeat.cache.items import read_items
    from qfeat.cache.reader import open_stage
    from qfeat.pipeline.config import load_preset
    from qfeat.pipeline.stages.clip import squash
    from qfeat.pipeline.video.reader import read_video
    from qfeat.trainers.loop import LoopConfig, fit
    from qfeat.trainers.scma import QCLIP
    from qfeat.trainers.scma_train import load_clip_for, scorer, tokenizer_for, usable_data

    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as folder:
        cache = build_cache(Path(folder), videos)
        stage = open_stage(cache, "demo-video", "clip")
        base, pre, cfg = load_clip_for(stage)
        k, tokenizer = int(cfg["adapted_blocks"]), tokenizer_for(cfg["model"])
        data, features, cache_rows = usable_data(read_items(cache, "demo-video"), stage, "full")
        frames = open_stage(cache, "demo-video", "frames").table().set_index("item_id")
        chosen = [list(frames.loc[i, "indices"]) for i in data["item_id"]]
        paths = data["path"].to_numpy()

        def pixels(row: int) -> np.ndarray:
            decoded, _ = read_video(Path(paths[row]), lambda r, i=chosen[row]: r.frames(i))
            return squash(decoded, pre.size, pre.mean, pre.std, pre.interpolation)

        def e2e(model):
            def score(rows: np.ndarray) -> torch.Tensor:
                x = torch.from_numpy(np.stack([pixels(r) for r in rows]))
                return model.score(model.video_from_pixels(x))

            return score

        tcfg = {**load_preset("tiny")["scma"], "epochs": epochs}
        loop = LoopConfig(epochs=epochs, batch_size=int(tcfg["batch_size"]), lr=float(tcfg["lr"]),
                          weight_decay=float(tcfg["weight_decay"]),
                          warmup_epochs=float(tcfg["warmup_epochs"]))  # fmt: skip
        rows = np.arange(len(data))
        train, val = rows[: int(0.8 * len(rows))], rows[int(0.8 * len(rows)) :]
        mos = torch.tensor(data["mos"].to_numpy(), dtype=torch.float32)
        timings = {}
        torch.set_num_threads(1)  # what qfeat train scma does on CPU
        warm = LoopConfig(epochs=1, batch_size=loop.batch_size)
        for name, make_score in (
            ("cache", lambda m: scorer(m, features, cache_rows, "full", device)),
            ("e2e", e2e),
        ):
            torch.manual_seed(0)
            model = QCLIP(copy.deepcopy(base), tokenizer, k=k, r=int(tcfg["r"]))
            # one untimed pass: first-call costs (optimizer imports, allocator) are not epochs
            fit(copy.deepcopy(model), make_score(model), mos, train[:4], val[:4], warm)
            t0 = time.perf_counter()
            fit(model, make_score(model), mos, train, val, loop)
            timings[name] = (time.perf_counter() - t0) / epochs
    return {
        "videos": len(data),
        "epochs": epochs,
        "cache_s_per_epoch": timings["cache"],
        "e2e_s_per_epoch": timings["e2e"],
        "train_scma_cache_vs_e2e": timings["e2e"] / timings["cache"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=2)
    args = options(parser, argv)
    if args.dry_run:
        args.videos, args.epochs = 8, 1
    r = run(args.videos, args.epochs)
    record("ratios", {"train_scma_cache_vs_e2e": round(r["train_scma_cache_vs_e2e"], 1)})
    record("train_scma", {k: round(v, 4) for k, v in r.items()})
    print(f"SCMA on {r['videos']} demo-video clips, tiny preset, {args.epochs} epochs:")
    print(f"  from the cache: {r['cache_s_per_epoch']:.3f} s/epoch")
    print(f"  end to end:     {r['e2e_s_per_epoch']:.3f} s/epoch")
    print(f"train_scma_cache_vs_e2e = {r['train_scma_cache_vs_e2e']:.1f}")


if __name__ == "__main__":
    main()
