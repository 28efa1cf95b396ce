"""The feature cache: fingerprints, atomic shards, reading, crashes and concurrency.

verify / repair / gc and the `qfeat cache` commands: test_cache_maintenance.py."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from qfeat.cache.fingerprint import build_manifest, fingerprint
from qfeat.cache.inventory import find_garbage
from qfeat.cache.items import read_items, write_items
from qfeat.cache.layout import MANIFEST, items_path
from qfeat.cache.plan import plan_shards, split_done
from qfeat.cache.reader import CacheMissing, MappedRows, join_stages, open_stage
from qfeat.cache.verify import verify_stage
from qfeat.cache.writer import ShardWriter, create_stage_dir
from qfeat.pipeline.config import apply_overrides, load_preset
from qfeat.pipeline.datasets import open_dataset
from tests.cache_helpers import (
    IDS,
    manifest_args,
    manifest_for,
    shard_arrays,
    shard_columns,
    write_stage,
)

REPO = Path(__file__).resolve().parents[1]


# -- fingerprints -------------------------------------------------------------------


def test_fingerprint_covers_defaults_and_ignores_bookkeeping():
    base = manifest_for()
    # setting a field to its default value is the same configuration
    same = apply_overrides(load_preset("tiny"), ["backbone.input_size=128"])["backbone"]
    assert manifest_for(config=same)["fingerprint"] == base["fingerprint"]
    # changing a default of the preset changes the fingerprint
    changed_default = dict(load_preset("tiny")["backbone"], input_size=129)
    assert manifest_for(config=changed_default)["fingerprint"] != base["fingerprint"]
    assert manifest_for(upstream={"regions": "abc"})["fingerprint"] != base["fingerprint"]
    assert manifest_for(ids=IDS[:-1])["fingerprint"] != base["fingerprint"]
    assert manifest_for(shard_size=5)["fingerprint"] != base["fingerprint"]
    bookkeeping = dict(base, created="1999-01-01", libraries={"torch": "0.1"})
    assert fingerprint(bookkeeping) == base["fingerprint"]


def test_output_affecting_constants_are_fingerprinted(monkeypatch):
    """A stage's module constants (backbone's decode bound, the text template) are part
    of its fingerprint; a manifest written before constants were recorded still verifies."""
    from qfeat.pipeline.stages import backbone, text

    base = manifest_for(constants=backbone.BackboneStage.constants())
    monkeypatch.setattr(backbone, "MAX_SIDE", 2048)
    assert backbone.BackboneStage.constants() == {"max_side": 2048}
    assert (
        manifest_for(constants=backbone.BackboneStage.constants())["fingerprint"]
        != (base["fingerprint"])
    )
    template = text.TextStage.constants()["template"]
    assert template.startswith("<content>. colour: fair") and template.endswith("overall: fair")
    from qfeat.cache.fingerprint import FINGERPRINTED, canonical_json, sha256_text

    older = {k: v for k, v in base.items() if k != "constants"}  # as qfeat wrote it then
    then = sha256_text(canonical_json({k: older[k] for k in FINGERPRINTED}))[:16]
    assert fingerprint(older) == then != fingerprint(base)


def test_model_identity_hashes_weights(tmp_path):
    from qfeat.cache.fingerprint import model_identity

    weights = tmp_path / "sam.pth"
    weights.write_bytes(b"weights-v1")
    first = model_identity("vit_h", weights)
    weights.write_bytes(b"weights-v2")
    assert model_identity("vit_h", weights)["sha256"] != first["sha256"]
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert set(model_identity("qwen", folder)["sha256"]) == {"config.json"}
    assert model_identity("Qwen/Qwen2.5-VL-7B-Instruct", revision="abc")["revision"] == "abc"
    assert (
        manifest_for()["fingerprint"]
        != build_manifest(**{**manifest_args(), "model": first})["fingerprint"]
    )


def test_manifest_records_everything(tmp_path):
    m = manifest_for()
    folder = create_stage_dir(tmp_path, "demo", m)
    assert folder == tmp_path / "demo" / "backbone" / m["fingerprint"]
    stored = json.loads((folder / MANIFEST).read_text())
    for key in (
        "stage",
        "stage_version",
        "config",
        "model",
        "upstream",
        "dataset",
        "items_sha256",
        "libraries",
        "created",
        "shards_total",
    ):
        assert key in stored
    assert stored["shards_total"] == 3 and stored["libraries"]["numpy"] == np.__version__
    again = dict(m, created="later")
    create_stage_dir(tmp_path, "demo", again)  # a resumed run keeps the first manifest
    assert json.loads((folder / MANIFEST).read_text())["created"] == m["created"]


# -- writing and reading ------------------------------------------------------------


def test_round_trip_table_and_arrays(tmp_path):
    m = manifest_for()
    write_stage(tmp_path, m, failed={"images/005.png"})
    stage = open_stage(tmp_path, "demo", "backbone")
    assert stage.complete and stage.fingerprint == m["fingerprint"]
    table = stage.table()
    assert table["item_id"].tolist() == IDS
    assert set(table.columns) >= {"item_id", "status", "error", "score"}
    features = stage.array("features")
    assert features.dtype == np.float16 and features.shape == (10, 6)
    np.testing.assert_array_equal(features, shard_arrays(IDS)["features"].astype(np.float16))
    assert stage.errors()["item_id"].tolist() == ["images/005.png"]
    # ordinary tools read the files directly
    first = pq.read_table(stage.dir / "shard-00000.parquet").to_pandas()
    assert first["item_id"].tolist() == IDS[:4]


def test_fp16_round_trip_is_bit_exact(tmp_path):
    every = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    values = every[np.isfinite(every)].reshape(-1, 64)  # every finite fp16 value
    ids = [f"images/{i:03d}.png" for i in range(len(values))]
    m = manifest_for(ids=ids, shard_size=300)
    folder = create_stage_dir(tmp_path, "demo", m)
    for shard in plan_shards(ids, 300):
        rows = slice(shard.index * 300, shard.index * 300 + len(shard.item_ids))
        ShardWriter(folder, shard.index).write(
            shard_columns(shard.item_ids), {"features": values[rows]}
        )
    stage = open_stage(tmp_path, "demo", "backbone")
    for loaded in (stage.array("features"), stage.array("features", mmap=True)[:]):
        np.testing.assert_array_equal(np.asarray(loaded).view(np.uint16), values.view(np.uint16))
    # the h5py path (markers without a recorded offset) gives the same bits
    for marker in stage.markers.values():
        del marker["arrays"]["features"]["offset"]
    np.testing.assert_array_equal(stage.array("features").view(np.uint16), values.view(np.uint16))


def test_mmap_matches_memory(tmp_path):
    write_stage(tmp_path, manifest_for())
    stage = open_stage(tmp_path, "demo", "backbone")
    full, mapped = stage.array("features"), stage.array("features", mmap=True)
    assert isinstance(mapped, MappedRows) and mapped.shape == full.shape
    idx = np.array([9, 0, 4, 3, 7])
    np.testing.assert_array_equal(mapped[idx], full[idx])
    np.testing.assert_array_equal(mapped[5], full[5])


def test_retry_overwrites_same_names(tmp_path):
    m = manifest_for()
    folder = write_stage(tmp_path, m)
    before = sorted(p.name for p in folder.iterdir())
    ShardWriter(folder, 1).write(shard_columns(IDS[4:8]), shard_arrays(IDS[4:8]))
    assert sorted(p.name for p in folder.iterdir()) == before
    assert len(open_stage(tmp_path, "demo", "backbone").table()) == 10


def test_latest_complete_and_explicit_fingerprint(tmp_path):
    old = manifest_for()
    write_stage(tmp_path, old)
    new = dict(manifest_for(config={"model": "other"}), created="9999-01-01T00:00:00+00:00")
    write_stage(tmp_path, new, skip={2})  # newer but incomplete
    assert open_stage(tmp_path, "demo", "backbone").fingerprint == old["fingerprint"]
    partial = open_stage(tmp_path, "demo", "backbone", new["fingerprint"])
    assert not partial.complete and len(partial.table()) == 8
    with pytest.raises(CacheMissing, match="qfeat features demo --stages clip"):
        open_stage(tmp_path, "demo", "clip")


def test_join_stages(tmp_path):
    write_stage(tmp_path, manifest_for())
    regions = manifest_for(stage="regions", ids=IDS[::-1], arrays=[])
    folder = create_stage_dir(tmp_path, "demo", regions)
    for shard in plan_shards(IDS[::-1], 4):
        cols = shard_columns(shard.item_ids, failed={"images/002.png"})
        ShardWriter(folder, shard.index).write(cols)
    joined = join_stages(
        [open_stage(tmp_path, "demo", "backbone"), open_stage(tmp_path, "demo", "regions")]
    )
    assert len(joined) == 10
    row = joined.set_index("item_id").loc["images/002.png"]
    assert row["regions.status"] == "decode_error" and row["backbone.status"] == "ok"
    assert row["backbone.row"] == 2 and row["regions.row"] == 7


def test_items_table(tmp_path):
    adapter = open_dataset("demo", tmp_path / "data" / "demo")
    adapter.prepare()
    items = adapter.list_items().items
    write_items(tmp_path / "cache", "demo", items)
    table = read_items(tmp_path / "cache", "demo")
    assert list(table.columns) == ["item_id", "path", "mos", "mos_01", "split", "group"]
    assert table["item_id"].tolist() == [i.item_id for i in items]
    assert Path(table["path"][0]).is_file()
    assert items_path(tmp_path / "cache", "demo").is_file()


def test_items_table_stores_the_declared_score_scale(tmp_path, demo_images):
    """The scale behind mos_01 is what the adapter declared, stored with the items, not
    refitted from them: it survives items that all share one score (no fit possible)."""
    from types import SimpleNamespace

    from qfeat.cache.items import read_scale
    from qfeat.trainers.runinfo import dataset_scale, mos_range

    assert read_scale(demo_images.cache, "demo") == {
        "min": 1.0, "max": 5.0, "higher_is_better": True,
    }  # fmt: skip
    same = [
        SimpleNamespace(item_id=f"{i}.png", path=tmp_path / f"{i}.png", mos=60.0, mos_01=0.6,
                        split=None, group=None)
        for i in range(3)
    ]  # fmt: skip
    scale = {"min": 0.0, "max": 100.0, "higher_is_better": True}
    write_items(tmp_path, "flat", same, scale=scale)
    items = read_items(tmp_path, "flat")
    assert mos_range(items) is None and dataset_scale(tmp_path, "flat", items) == scale
    write_items(tmp_path, "flat", same[:1])  # a later run without a scale keeps it
    assert read_scale(tmp_path, "flat") == scale
    assert read_scale(tmp_path, "none") is None


def test_items_table_is_the_union_of_runs(tmp_path):
    """A --limit run after a full one keeps the other items (reports and evaluations of
    runs made on the full cache still find them) and rewrites its own rows in place."""
    import dataclasses

    adapter = open_dataset("demo", tmp_path / "data" / "demo")
    adapter.prepare()
    items = adapter.list_items().items[:12]
    cache = tmp_path / "cache"
    write_items(cache, "demo", items[:4])  # a --limit 4 run first
    write_items(cache, "demo", items)  # then the full run appends the rest, in order
    assert read_items(cache, "demo")["item_id"].tolist() == [i.item_id for i in items]
    relabelled = [dataclasses.replace(i, mos=i.mos + 1.0) for i in items[:3]]
    write_items(cache, "demo", relabelled)  # a later --limit 3 run
    table = read_items(cache, "demo")
    assert table["item_id"].tolist() == [i.item_id for i in items]
    assert table["mos"].tolist() == [i.mos + 1.0 for i in items[:3]] + [i.mos for i in items[3:]]


# -- crashes, planning, concurrency -------------------------------------------------

KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import qfeat.cache.writer as w
    from qfeat.cache.writer import ShardWriter

    real = w._write_h5
    def dying(path, arrays):
        real(path, arrays)              # the temp file is fully written ...
        os.kill(os.getpid(), signal.SIGKILL)   # ... and the process dies before replace
    w._write_h5 = dying
    ids = sys.argv[2].split(",")
    ShardWriter(sys.argv[1], 1).write(
        {"item_id": ids, "status": ["ok"] * len(ids), "error": [None] * len(ids)},
        {"features": np.ones((len(ids), 6), np.float32)},
    )
    """
)


def test_killed_writer_leaves_no_shard_and_rerun_completes(tmp_path):
    m = manifest_for()
    folder = write_stage(tmp_path, m, skip={1})
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(folder), ",".join(IDS[4:8])],
        cwd=REPO,
        capture_output=True,
    )
    assert proc.returncode == -9
    names = {p.name for p in folder.iterdir()}
    assert not {"shard-00001.parquet", "shard-00001.h5", "shard-00001.done.json"} & names
    assert any(n.startswith(".shard-00001") for n in names)  # only temp files remain
    stage = open_stage(tmp_path, "demo", "backbone", m["fingerprint"])
    assert not stage.complete and len(stage.table()) == 6
    shards = plan_shards(IDS, 4)
    done, todo = split_done(folder, shards)
    assert [s.index for s in done] == [0, 2] and [s.index for s in todo] == [1]
    for shard in todo:
        ShardWriter(folder, shard.index).write(
            shard_columns(shard.item_ids), shard_arrays(shard.item_ids)
        )
    assert open_stage(tmp_path, "demo", "backbone").table()["item_id"].tolist() == IDS
    assert [g.reason for g in find_garbage(tmp_path, tmp_min_age_s=0)] == [
        "temporary file of an interrupted write"
    ] * len([n for n in names if n.startswith(".shard")])


def test_plan_is_deterministic_and_force_reruns(tmp_path):
    shards = plan_shards(IDS, 4)
    assert [s.item_ids for s in shards] == [tuple(IDS[0:4]), tuple(IDS[4:8]), tuple(IDS[8:])]
    folder = write_stage(tmp_path, manifest_for())
    assert split_done(folder, shards) == (shards, [])
    assert split_done(folder, shards, force=True) == ([], shards)
    # a marker written for other items does not count
    other = plan_shards(IDS[1:], 4)
    assert [s.index for s in split_done(folder, other)[1]] == [0, 1, 2]


def _write_one(args):
    folder, index, ids = args
    ShardWriter(Path(folder), index).write(shard_columns(ids), shard_arrays(ids, dim=4096))
    return index


def test_concurrent_writers_do_not_interfere(tmp_path):
    ids = [f"images/{i:03d}.png" for i in range(64)]
    m = manifest_for(ids=ids, shard_size=4)
    folder = create_stage_dir(tmp_path, "demo", m)
    jobs = [(str(folder), s.index, s.item_ids) for s in plan_shards(ids, 4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert sorted(pool.map(_write_one, jobs)) == list(range(16))
    stage = open_stage(tmp_path, "demo", "backbone")
    assert stage.complete and stage.table()["item_id"].tolist() == ids
    assert verify_stage(stage) == []
    np.testing.assert_array_equal(
        stage.array("features"), shard_arrays(ids, dim=4096)["features"].astype(np.float16)
    )


def _write_item_rows(args):
    cache, worker = args
    from types import SimpleNamespace

    for round_ in range(8):
        rows = [
            SimpleNamespace(item_id=f"w{worker}/r{round_}/{i}.png", path=Path("/x.png"), mos=1.0,
                            mos_01=0.0, split=None, group=None)
            for i in range(5)
        ]  # fmt: skip
        write_items(Path(cache), "demo", rows)
    return worker


def test_items_table_keeps_every_row_under_concurrent_writers(tmp_path):
    """Issue 24.4: two processes writing disjoint items of one dataset at once lost rows
    (read-modify-write without a lock)."""
    jobs = [(str(tmp_path), w) for w in range(3)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        assert sorted(pool.map(_write_item_rows, jobs)) == [0, 1, 2]
    stored = read_items(tmp_path, "demo")["item_id"]
    assert len(stored) == 3 * 8 * 5 and stored.is_unique


def test_arrays_larger_than_the_table_are_rejected(tmp_path):
    folder = create_stage_dir(tmp_path, "demo", manifest_for())
    with pytest.raises(ValueError, match="rows"):
        ShardWriter(folder, 0).write(shard_columns(IDS[:4]), {"features": np.zeros((5, 2))})
    with pytest.raises(ValueError, match="item_id"):
        ShardWriter(folder, 0).write(pd.DataFrame({"x": [1]}).to_dict(orient="list"))
    assert not list(folder.glob("shard-*"))
    assert os.listdir(folder) == [MANIFEST]


def test_cache_read_benchmark_runs_small():
    from benchmarks.cache_read import run

    result = run(items=300, shard_size=64, repeats=1)
    assert result["cache_s"] > 0 and result["npy_s"] > 0
    assert result["cache_read_vs_npy"] == pytest.approx(result["npy_s"] / result["cache_s"])
