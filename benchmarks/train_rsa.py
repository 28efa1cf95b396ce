"""RSA training from the cache vs. end to end (backbone recomputed from pixels).

The first ``--items`` demo images get all four image stages (tiny preset) in a temporary
cache, and ``qfeat train rsa`` (:func:`qfeat.trainers.rsa_train.train_rsa`, one split,
``--epochs``) trains on it; its per-epoch progress calls time the epochs. End to end,
every epoch would also read the images it trains and validates on from disk, run the
frozen backbone on them and compute their region moments again (regions, descriptions
and text still from the cache: the backbone is what published code recomputes every
epoch); that work is timed here on the same rows, batch by batch, and added per epoch.
``train_rsa_cache_vs_e2e`` = end-to-end seconds per epoch / cache seconds per epoch
(the training loop only); ``train_rsa_cache_vs_e2e_total`` also charges the cache side
what ``train rsa`` does before its first epoch (reading the stages, decoding region
masks, region moments).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import demo_root, options, record


def build_cache(tmp: Path, items: int, dataset: str = "demo") -> Path:
    from qfeat.pipeline.runner import RunRequest, prepare, run

    cache = tmp / "cache"
    request = RunRequest(
        dataset=dataset,
        root=demo_root(tmp, dataset),
        cache_dir=cache,
        limit=items,
        workers=1,
        shard_size=32,
    )
    run(prepare(request))
    return cache


def recompute_seconds(cache: Path, rows: np.ndarray, batch_size: int) -> float:
    """Seconds to read ``rows``' images, run the cached backbone's model on them and
    compute their region moments, ``batch_size`` images at a time (one end-to-end epoch's
    extra work on those rows)."""
    from qfeat.cache.reader import open_stage
    from qfeat.pipeline.images import open_image
    from qfeat.pipeline.models.backbones import build_backbone
    from qfeat.pipeline.stages.backbone import MAX_SIDE, squash_normalise
    from qfeat.trainers.rsa import region_moments
    from qfeat.trainers.rsa_data import load_rsa_data, needed_stages

    data = load_rsa_data(cache, "demo", needed_stages("rsa", True, True))
    cfg = open_stage(cache, "demo", "backbone").manifest["config"]
    bb = build_backbone(cfg["model"], cfg.get("weights", ""), int(cfg["seed"]), cfg["input_size"])
    paths = data.data["path"].to_numpy()
    t0 = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        pixels = np.stack(
            [
                squash_normalise(
                    open_image(Path(paths[r]), MAX_SIDE), bb.input_size, bb.mean, bb.std
                )
                for r in batch
            ]
        )
        with torch.no_grad():
            features = bb.module(torch.from_numpy(pixels))
            region_moments(features, data.masks[torch.as_tensor(batch)])
    return time.perf_counter() - t0


def run(items: int, epochs: int) -> dict[str, float]:
    from qfeat.cache.items import read_items
    from qfeat.trainers.rsa_train import RsaRequest, train_rsa
    from qfeat.trainers.settings import RSASettings, trainer_settings

    if epochs < 2:
        raise SystemExit("--epochs must be at least 2 (epochs are timed between progress calls)")
    with tempfile.TemporaryDirectory() as folder:
        cache = build_cache(Path(folder), items)
        request = RsaRequest(dataset="demo", cache_dir=cache, runs_dir=Path(folder) / "runs",
                             run="bench", splits=1, epochs=epochs, preset="tiny")  # fmt: skip
        stamps: list[float] = []
        t0 = time.perf_counter()
        _, metrics = train_rsa(request, progress=lambda _: stamps.append(time.perf_counter()))
        if len(stamps) != epochs:
            raise RuntimeError(f"train rsa reported {len(stamps)} of {epochs} epochs")
        cache_epoch = (stamps[-1] - stamps[0]) / (epochs - 1)
        before_first = stamps[0] - t0 - cache_epoch  # settings, stages, masks, moments
        trained = len(read_items(cache, "demo"))
        tested = sum(s["n"] for s in metrics["splits"])
        batch = int(trainer_settings(RSASettings, "tiny", None)["batch_size"])
        seen = np.arange(trained - tested)  # the rows an epoch reads: train + val
        extra = recompute_seconds(cache, seen, batch)
    e2e_epoch = cache_epoch + extra
    return {
        "items": trained,
        "epochs": epochs,
        "cache_load_s": before_first,
        "cache_s_per_epoch": cache_epoch,
        "e2e_s_per_epoch": e2e_epoch,
        "train_rsa_cache_vs_e2e": e2e_epoch / cache_epoch,
        "train_rsa_cache_vs_e2e_total": e2e_epoch * epochs / (cache_epoch * epochs + before_first),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    args = options(parser, argv)
    if args.dry_run:
        args.items, args.epochs = 48, 2  # three content groups: train, validation, test
    r = run(args.items, args.epochs)
    record("ratios", {"train_rsa_cache_vs_e2e": round(r["train_rsa_cache_vs_e2e"], 1)})
    record("ratios", {"train_rsa_cache_vs_e2e_total": round(r["train_rsa_cache_vs_e2e_total"], 1)})
    record("train_rsa", {k: round(v, 4) for k, v in r.items()})
    print(f"RSA on {r['items']} demo images, tiny preset, {args.epochs} epochs:")
    print(
        f"  from the cache: {r['cache_s_per_epoch']:.3f} s/epoch + {r['cache_load_s']:.2f} s load"
    )
    print(f"  end to end:     {r['e2e_s_per_epoch']:.3f} s/epoch")
    print(f"train_rsa_cache_vs_e2e = {r['train_rsa_cache_vs_e2e']:.1f} per epoch, "
          f"{r['train_rsa_cache_vs_e2e_total']:.1f} with the load")  # fmt: skip


if __name__ == "__main__":
    main()
