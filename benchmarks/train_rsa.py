"""RSA training from the cache vs. end to end (backbone recomputed from pixels).

The first ``--items`` demo images get all four image stages (tiny preset) in a temporary
cache. The same RSA head (same seed, same rows, same epochs) is then trained twice:
from the cache (region moments computed once at load, what ``qfeat train rsa`` does),
and end to end, where every step reads the batch's images from disk, runs the frozen
backbone and computes the region moments again (regions, descriptions and text still
come from the cache: the backbone is what published code recomputes every epoch).
``train_rsa_cache_vs_e2e`` = end-to-end seconds per epoch / cache seconds per epoch
(the training loop only); ``train_rsa_cache_vs_e2e_total`` also charges the cache side
its one-off load (reading the stages, decoding region masks, region moments).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import record


def build_cache(tmp: Path, items: int) -> Path:
    from qfeat.pipeline.runner import RunRequest, prepare, run

    cache = tmp / "cache"
    request = RunRequest(
        dataset="demo", root=tmp / "demo", cache_dir=cache, limit=items, workers=1, shard_size=32
    )
    run(prepare(request))
    return cache


def e2e_scorer(data, cache: Path, device: torch.device):
    """``make_score`` that recomputes the backbone map of every batch from pixels."""
    from qfeat.cache.reader import open_stage
    from qfeat.pipeline.images import open_image
    from qfeat.pipeline.models.backbones import build_backbone
    from qfeat.pipeline.stages.backbone import MAX_SIDE, squash_normalise
    from qfeat.trainers.rsa import region_moments

    manifest = open_stage(cache, "demo", "backbone").manifest
    cfg = manifest["config"]
    bb = build_backbone(cfg["model"], cfg.get("weights", ""), int(cfg["seed"]), cfg["input_size"])
    paths = data.data["path"].to_numpy()

    def make_score(model):
        def score(rows: np.ndarray) -> torch.Tensor:
            pixels = np.stack(
                [
                    squash_normalise(
                        open_image(Path(paths[r]), MAX_SIDE), bb.input_size, bb.mean, bb.std
                    )
                    for r in rows
                ]
            )
            with torch.no_grad():
                features = bb.module(torch.from_numpy(pixels).to(device))
            idx = torch.tensor(np.asarray(rows))
            mean, square, area = region_moments(features, data.masks[idx].to(device))
            rest = (data.valid, data.text, data.text_valid, data.ratings)
            return model(mean, square, area, *(t[idx].to(device) for t in rest))

        return score

    return make_score


def run(items: int, epochs: int) -> dict[str, float]:
    from qfeat.pipeline.config import load_preset
    from qfeat.trainers.loop import fit
    from qfeat.trainers.protocol import loop_config
    from qfeat.trainers.rsa_data import load_rsa_data, needed_stages
    from qfeat.trainers.rsa_train import build_head, head_scorer

    torch.set_num_threads(1)  # what qfeat train rsa does on CPU
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as folder:
        cache = build_cache(Path(folder), items)
        t0 = time.perf_counter()
        data = load_rsa_data(cache, "demo", needed_stages("rsa", True, True))
        t_load = time.perf_counter() - t0
        tcfg = {**load_preset("tiny")["rsa"], "epochs": epochs}
        head_cfg = {"attention": "rsa", "use_text": True, "use_ratings": True,
                    "hidden": tcfg["hidden"], "rating_dim": tcfg["rating_dim"]}  # fmt: skip
        rows = np.arange(len(data.data))
        train, val = rows[: int(0.8 * len(rows))], rows[int(0.8 * len(rows)) :]
        mos = torch.tensor(data.data["mos"].to_numpy(), dtype=torch.float32)
        timings = {}
        for name, make_score in (
            ("cache", head_scorer(data, device)),
            ("e2e", e2e_scorer(data, cache, device)),
        ):
            torch.manual_seed(0)
            model = build_head(data, head_cfg)
            t0 = time.perf_counter()
            fit(model, make_score(model), mos, train, val, loop_config(tcfg, 0))
            timings[name] = (time.perf_counter() - t0) / epochs
    return {
        "items": len(data.data),
        "epochs": epochs,
        "cache_load_s": t_load,
        "cache_s_per_epoch": timings["cache"],
        "e2e_s_per_epoch": timings["e2e"],
        "train_rsa_cache_vs_e2e": timings["e2e"] / timings["cache"],
        "train_rsa_cache_vs_e2e_total": timings["e2e"]
        * epochs
        / (timings["cache"] * epochs + t_load),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
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
