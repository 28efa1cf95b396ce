"""Shared helpers of the cache tests: a small test stage written shard by shard."""

from __future__ import annotations

import numpy as np

from qfeat.cache.fingerprint import build_manifest
from qfeat.cache.plan import plan_shards
from qfeat.cache.writer import ShardWriter, create_stage_dir
from qfeat.pipeline.config import load_preset

IDS = [f"images/{i:03d}.png" for i in range(10)]


def manifest_for(**overrides):
    """A manifest for the test stage; ``ids`` stands for ``item_ids``."""
    if "ids" in overrides:
        overrides["item_ids"] = overrides.pop("ids")
    return build_manifest(**{**manifest_args(), **overrides})


def shard_columns(ids, failed=()):
    return {
        "item_id": list(ids),
        "status": ["decode_error" if i in failed else "ok" for i in ids],
        "error": ["cannot decode" if i in failed else None for i in ids],
        "score": [float(len(i)) for i in ids],
    }


def shard_arrays(ids, dim=6):
    rows = [int(i[7:10]) for i in ids]
    return {"features": np.array([[r + k / 8 for k in range(dim)] for r in rows], np.float32)}


def write_stage(cache, manifest, ids=IDS, shard_size=4, failed=(), skip=()):
    folder = create_stage_dir(cache, "demo", manifest)
    for shard in plan_shards(ids, shard_size):
        if shard.index in skip:
            continue
        ShardWriter(folder, shard.index).write(
            shard_columns(shard.item_ids, failed), shard_arrays(shard.item_ids)
        )
    return folder


def manifest_args():
    return dict(
        stage="backbone",
        stage_version=1,
        config=load_preset("tiny")["backbone"],
        model={"name": "tiny", "seed": 0},
        upstream={},
        dataset={"adapter": "demo", "name": "demo", "options": {}},
        item_ids=IDS,
        shard_size=4,
        arrays=["features"],
    )


def record_edit(stage_dir, index):
    """Make shard ``index``'s done marker describe its files as they are now (sizes,
    checksums, seal), as if a writer had produced the edited content: for tests that plant
    content in a cache on purpose, not damage."""
    import json

    from qfeat.cache.fingerprint import file_sha256
    from qfeat.cache.integrity import seal
    from qfeat.cache.layout import shard_name

    path = stage_dir / shard_name(index, "done.json")
    marker = json.loads(path.read_text())
    for name in marker["files"]:
        file = stage_dir / name
        marker["files"][name] = {"bytes": file.stat().st_size, "sha256": file_sha256(file)}
    path.write_text(json.dumps(seal(marker)))


def stage_folder(cache, stage, ids, shard_size, config=None):
    """An empty, sealed fingerprint folder of ``stage`` planned over ``ids``."""
    manifest = manifest_for(stage=stage, config=config or {}, ids=ids, shard_size=shard_size)
    return create_stage_dir(cache, "demo", manifest)
