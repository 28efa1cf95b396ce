"""`qfeat cache verify | ls | errors | gc`: damage and staleness found, repaired, listed,
and garbage collected without touching what readers use."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from qfeat.cache.fingerprint import media_hash
from qfeat.cache.integrity import seal
from qfeat.cache.items import write_items
from qfeat.cache.plan import plan_shards, split_done
from qfeat.cache.reader import open_stage
from qfeat.cache.verify import verify_stage
from qfeat.cache.writer import ShardWriter, create_stage_dir
from qfeat.pipeline.datasets import open_dataset
from tests.cache_helpers import (
    IDS,
    manifest_for,
    shard_columns,
    write_stage,
)

REPO = Path(__file__).resolve().parents[1]


# -- verify, repair, gc and the CLI ---------------------------------------------------


def test_verify_catches_truncation_and_corruption(tmp_path, qfeat):
    folder = write_stage(tmp_path, manifest_for())
    parquet = folder / "shard-00000.parquet"
    parquet.write_bytes(parquet.read_bytes()[:-20])  # truncated
    h5 = folder / "shard-00002.h5"
    data = bytearray(h5.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    h5.write_bytes(bytes(data))
    bad = verify_stage(open_stage(tmp_path, "demo", "backbone", folder.name))
    assert [(b.index, "bytes" in b.reason or "checksum" in b.reason) for b in bad] == [
        (0, True),
        (2, True),
    ]
    result = qfeat("cache", "verify", "--cache-dir", str(tmp_path))
    assert result.exit_code == 1
    assert str(parquet) in result.output and "2 bad" in result.output
    repaired = qfeat("cache", "verify", "--cache-dir", str(tmp_path), "--repair")
    assert repaired.exit_code == 0
    assert not (folder / "shard-00000.done.json").exists() and not parquet.exists()
    todo = split_done(folder, plan_shards(IDS, 4))[1]
    assert [s.index for s in todo] == [0, 2]
    assert qfeat("cache", "verify", "--cache-dir", str(tmp_path)).exit_code == 0


def test_verify_reads_hdf5_content(tmp_path):
    """A shard whose files match their checksums but whose HDF5 is not what the marker
    describes (e.g. written by another tool) is still caught."""
    folder = write_stage(tmp_path, manifest_for())
    marker = json.loads((folder / "shard-00001.done.json").read_text())
    marker["arrays"]["features"]["shape"] = [4, 7]  # resealed, so the HDF5 check speaks
    (folder / "shard-00001.done.json").write_text(json.dumps(seal(marker)))
    bad = verify_stage(open_stage(tmp_path, "demo", "backbone"))
    assert [b.index for b in bad] == [1] and "shape" in bad[0].reason


def test_verify_reports_shards_whose_media_changed(tmp_path, qfeat):
    """A shard is stale once one of its media files is edited in place or removed: verify
    names it (the items table gives the paths), --repair removes only those shards."""
    adapter = open_dataset("demo", tmp_path / "data" / "demo")
    adapter.prepare()
    items = adapter.list_items().items[:10]
    ids = [i.item_id for i in items]
    cache = tmp_path / "cache"
    write_items(cache, "demo", items)
    folder = create_stage_dir(cache, "demo", manifest_for(ids=ids))
    for shard in plan_shards(ids, 4):
        paths = [items[ids.index(i)].path for i in shard.item_ids]
        ShardWriter(folder, shard.index).write(
            shard_columns(shard.item_ids),
            {"features": np.zeros((len(paths), 6), np.float32)},
            media_sha256=media_hash(paths),
        )
    assert verify_stage(open_stage(cache, "demo", "backbone")) == []
    edited = Path(items[5].path)  # shard 1
    st = edited.stat()
    os.utime(edited, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    Path(items[9].path).unlink()  # shard 2
    bad = verify_stage(open_stage(cache, "demo", "backbone"))
    assert [b.index for b in bad] == [1, 2]
    assert all(b.reason.startswith("stale") for b in bad)
    assert "size or mtime" in bad[0].reason and ids[9] in bad[1].reason
    result = qfeat("cache", "verify", "--cache-dir", str(cache))
    assert result.exit_code == 1 and "2 bad" in result.output
    assert qfeat("cache", "verify", "--cache-dir", str(cache), "--repair").exit_code == 0
    assert [s.index for s in split_done(folder, plan_shards(ids, 4))[1]] == [1, 2]


def test_cache_ls_json(tmp_path, qfeat):
    m = manifest_for()
    write_stage(tmp_path, m, failed={"images/001.png"}, skip={2})
    entries = json.loads(qfeat("cache", "ls", "--cache-dir", str(tmp_path), "--json").output)
    assert len(entries) == 1
    e = entries[0]
    assert {k: e[k] for k in ("dataset", "stage", "fingerprint", "complete")} == {
        "dataset": "demo",
        "stage": "backbone",
        "fingerprint": m["fingerprint"],
        "complete": False,
    }
    assert (e["shards_done"], e["shards_total"], e["items_ok"], e["items_failed"]) == (2, 3, 7, 1)
    assert e["bytes"] > 0 and e["created"] == m["created"] and Path(e["path"]).is_dir()
    table = qfeat("cache", "ls", "--cache-dir", str(tmp_path))
    assert m["fingerprint"] in table.output and "2/3" in table.output


def test_cache_ls_marks_the_fingerprint_in_use(tmp_path, qfeat):
    """in_use: the fingerprint readers open (the last complete run, else the newest
    complete one); an incomplete folder never is."""
    from qfeat.cache.reader import mark_latest

    partial = manifest_for(shard_size=4)
    write_stage(tmp_path, partial, skip={2})
    old = manifest_for(shard_size=5)
    old["created"] = "2026-01-01T00:00:00+00:00"
    write_stage(tmp_path, old, shard_size=5)
    new = manifest_for(shard_size=2)
    write_stage(tmp_path, new, shard_size=2)

    def in_use():
        out = json.loads(qfeat("cache", "ls", "--cache-dir", str(tmp_path), "--json").output)
        return {e["fingerprint"] for e in out if e["in_use"]}

    assert in_use() == {new["fingerprint"]}  # the newest complete one
    mark_latest(tmp_path, "demo", "backbone", old["fingerprint"])
    assert in_use() == {old["fingerprint"]}  # the one the last run completed
    mark_latest(tmp_path, "demo", "backbone", partial["fingerprint"])
    assert in_use() == {new["fingerprint"]}  # not an incomplete one
    table = qfeat("cache", "ls", "--cache-dir", str(tmp_path)).output
    assert f"{new['fingerprint']}*" in table and f"{old['fingerprint']}*" not in table


def test_cache_errors_command(tmp_path, qfeat):
    write_stage(tmp_path, manifest_for(), failed={"images/001.png", "images/009.png"})
    out = json.loads(
        qfeat("cache", "errors", "demo", "backbone", "--cache-dir", str(tmp_path), "--json").output
    )
    assert out == [
        {"item_id": "images/001.png", "status": "decode_error", "error": "cannot decode"},
        {"item_id": "images/009.png", "status": "decode_error", "error": "cannot decode"},
    ]
    missing = qfeat("cache", "errors", "demo", "frames", "--cache-dir", str(tmp_path))
    assert missing.exit_code == 1 and "qfeat features demo" in missing.output


def test_gc_removes_superseded_but_keeps_referenced_upstream(tmp_path, qfeat):
    old = dict(manifest_for(config={"v": 1}), created="2026-01-01T00:00:00+00:00")
    mid = dict(manifest_for(config={"v": 2}), created="2026-02-01T00:00:00+00:00")
    new = dict(manifest_for(config={"v": 3}), created="2026-03-01T00:00:00+00:00")
    for m in (old, mid, new):
        write_stage(tmp_path, m)
    down = manifest_for(stage="text", upstream={"backbone": mid["fingerprint"]}, arrays=[])
    folder = create_stage_dir(tmp_path, "demo", down)
    for shard in plan_shards(IDS, 4):
        ShardWriter(folder, shard.index).write(shard_columns(shard.item_ids))
    listed = qfeat("cache", "gc", "--cache-dir", str(tmp_path))
    assert old["fingerprint"] in listed.output and mid["fingerprint"] not in listed.output
    assert (tmp_path / "demo" / "backbone" / old["fingerprint"]).is_dir()  # listing only
    qfeat("cache", "gc", "--cache-dir", str(tmp_path), "--yes")
    remaining = {p.name for p in (tmp_path / "demo" / "backbone").iterdir()}
    assert remaining == {mid["fingerprint"], new["fingerprint"]}
    assert "nothing to collect" in qfeat("cache", "gc", "--cache-dir", str(tmp_path)).output


def test_last_completed_run_is_what_readers_and_gc_keep(tmp_path, qfeat):
    """After ``mark_latest`` (what a completed ``qfeat features`` run writes) readers use
    that fingerprint even when a newer one exists, and gc keeps it; a marked fingerprint
    that is no longer complete falls back to the newest complete one."""
    from qfeat.cache.reader import latest_fingerprint, mark_latest

    old = dict(manifest_for(config={"v": 1}), created="2026-01-01T00:00:00+00:00")
    new = dict(manifest_for(config={"v": 2}), created="2026-02-01T00:00:00+00:00")
    for m in (old, new):
        write_stage(tmp_path, m)
    assert open_stage(tmp_path, "demo", "backbone").fingerprint == new["fingerprint"]
    mark_latest(tmp_path, "demo", "backbone", old["fingerprint"])
    assert latest_fingerprint(tmp_path, "demo", "backbone") == old["fingerprint"]
    assert open_stage(tmp_path, "demo", "backbone").fingerprint == old["fingerprint"]
    assert "nothing to collect" in qfeat("cache", "gc", "--cache-dir", str(tmp_path)).output
    (tmp_path / "demo" / "backbone" / old["fingerprint"] / "shard-00000.done.json").unlink()
    assert open_stage(tmp_path, "demo", "backbone").fingerprint == new["fingerprint"]


def test_ls_on_empty_cache(tmp_path, qfeat):
    assert (
        json.loads(qfeat("cache", "ls", "--cache-dir", str(tmp_path / "none"), "--json").output)
        == []
    )


def test_gc_keeps_what_a_run_was_trained_on_unless_asked(tmp_path, qfeat):
    """Issue 37's second finding: a run trained on an older fingerprint holds it; gc
    lists it as protected with the run, removes it only with --include-protected, and a
    registration whose run folder is gone is garbage itself."""
    from qfeat.cache.holds import register_run

    old = dict(manifest_for(config={"v": 1}), created="2026-01-01T00:00:00+00:00")
    new = dict(manifest_for(config={"v": 2}), created="2026-02-01T00:00:00+00:00")
    for m in (old, new):
        write_stage(tmp_path, m)
    run = tmp_path / "runs" / "first"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    register_run(
        tmp_path, "demo", run, trainer="rsa", fingerprints={"backbone": old["fingerprint"]}
    )
    cache = ["cache", "gc", "--cache-dir", str(tmp_path)]
    listed = qfeat(*cache).output
    assert (
        "protected" in listed and "held by runs first" in listed and "nothing to collect" in listed
    )
    ls = json.loads(qfeat("cache", "ls", "--cache-dir", str(tmp_path), "--json").output)
    assert {e["fingerprint"]: e["held_by"] for e in ls} == {
        old["fingerprint"]: ["first"],
        new["fingerprint"]: [],
    }
    qfeat(*cache, "--yes")
    folder = tmp_path / "demo" / "backbone" / old["fingerprint"]
    assert folder.is_dir()
    removed = qfeat(*cache, "--yes", "--include-protected").output
    assert "removing" in removed and "held by runs first" in removed and not folder.exists()
    shutil.rmtree(run)  # the run is gone: its registration is garbage
    assert "registration of run first" in qfeat(*cache).output
