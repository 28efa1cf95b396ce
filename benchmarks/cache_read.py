"""Cache reader vs a plain .npy file for a trainer-sized array.

10,000 items x 8 frames x 512 dims in fp16 (82 MB), written through the cache's
ShardWriter (10 shards) and, the same bytes, with ``np.save``. Both are read whole into
memory several times, interleaved, from the page cache; the best time of each counts.
``cache_read_vs_npy`` = npy time / cache time (1.0 = as fast; 0.8 = 25 % slower).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import best_of, options, record
from qfeat.cache.fingerprint import build_manifest
from qfeat.cache.plan import plan_shards
from qfeat.cache.reader import open_stage
from qfeat.cache.writer import ShardWriter, create_stage_dir


def run(items: int = 10_000, shard_size: int = 1_000, repeats: int = 7) -> dict[str, float]:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((items, 8, 512), dtype=np.float32).astype(np.float16)
    ids = [f"videos/{i:05d}.mp4" for i in range(items)]
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        manifest = build_manifest(
            stage="clip",
            stage_version=1,
            config={},
            model={"name": "bench"},
            upstream={},
            dataset={"adapter": "bench"},
            item_ids=ids,
            shard_size=shard_size,
            arrays=["embeddings"],
        )
        folder = create_stage_dir(cache, "bench", manifest)
        for shard in plan_shards(ids, shard_size):
            rows = slice(shard.index * shard_size, shard.index * shard_size + len(shard.item_ids))
            ShardWriter(folder, shard.index).write(
                {
                    "item_id": list(shard.item_ids),
                    "status": ["ok"] * len(shard.item_ids),
                    "error": [None] * len(shard.item_ids),
                },
                {"embeddings": data[rows]},
            )
        npy = Path(tmp) / "embeddings.npy"
        np.save(npy, data)
        stage = open_stage(cache, "bench", "clip")
        assert np.array_equal(stage.array("embeddings").view(np.uint16), data.view(np.uint16))
        t_cache, t_npy = [], []
        for _ in range(repeats):  # interleaved so drift hits both alike
            t_cache.append(best_of(lambda: stage.array("embeddings"), 1))
            t_npy.append(best_of(lambda: np.load(npy), 1))
    mb = data.nbytes / 1e6
    return {
        "cache_s": min(t_cache),
        "npy_s": min(t_npy),
        "cache_mb_per_s": mb / min(t_cache),
        "npy_mb_per_s": mb / min(t_npy),
        "cache_read_vs_npy": min(t_npy) / min(t_cache),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = options(parser, argv)
    if args.dry_run:
        args.items, args.repeats = 200, 1
    r = run(items=args.items, shard_size=min(1_000, args.items), repeats=args.repeats)
    path = record("ratios", {"cache_read_vs_npy": round(r["cache_read_vs_npy"], 3)})
    record("cache_read", {k: round(v, 4) for k, v in r.items()})
    print(f"{'reader':<12}{'seconds':>10}{'MB/s':>10}")
    print(f"{'qfeat cache':<12}{r['cache_s']:>10.4f}{r['cache_mb_per_s']:>10.0f}")
    print(f"{'np.load':<12}{r['npy_s']:>10.4f}{r['npy_mb_per_s']:>10.0f}")
    print(f"cache_read_vs_npy = {r['cache_read_vs_npy']:.3f} (>= 0.8 means at most 25 % slower)")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
