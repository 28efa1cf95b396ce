"""Readers refuse damaged shards, edited manifests and edited done markers (issue 24.1-2);
`cache verify` names each, `--repair` and the next run fix it."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from qfeat.cache.integrity import CacheDamaged
from qfeat.cache.plan import plan_shards, split_done
from qfeat.cache.reader import list_stages, open_stage
from qfeat.cache.verify import repair, verify_stage
from qfeat.cache.writer import create_stage_dir
from tests.cache_helpers import IDS, manifest_for, write_stage


def _overwrite(path, offset: int, data: bytes, keep_mtime: bool = False) -> None:
    """Bytes written inside ``path`` (its size unchanged), optionally hiding the edit's
    mtime as a careless copy or tool might."""
    stat = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    if keep_mtime:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size


def test_inf_written_into_an_hdf5_shard_is_refused(tmp_path):
    folder = write_stage(tmp_path, manifest_for())
    marker = json.loads((folder / "shard-00001.done.json").read_text())
    offset = marker["arrays"]["features"]["offset"]
    inf16 = np.full(8, np.inf, np.float16).tobytes()
    _overwrite(folder / "shard-00001.h5", offset, inf16, keep_mtime=True)
    stage = open_stage(tmp_path, "demo", "backbone")
    for read in (lambda: stage.array("features"), lambda: stage.array("features", mmap=True)[:]):
        with pytest.raises(CacheDamaged, match="shard-00001.h5 does not match its checksum"):
            read()
    with pytest.raises(CacheDamaged, match="cache verify --repair"):
        stage.table()
    bad = verify_stage(stage)
    assert [b.index for b in bad] == [1]


def test_the_finite_guard_catches_what_the_checksums_cannot(tmp_path, monkeypatch):
    """Large files are hashed only when modified after their marker; values written with
    the original mtime kept still never reach a trainer when they are NaN or inf."""
    from qfeat.cache import integrity

    monkeypatch.setattr(integrity, "ALWAYS_HASH_BYTES", 0)
    folder = write_stage(tmp_path, manifest_for())
    offset = json.loads((folder / "shard-00002.done.json").read_text())["arrays"]["features"]
    nan16 = np.full(4, np.nan, np.float16).tobytes()
    _overwrite(folder / "shard-00002.h5", offset["offset"], nan16, keep_mtime=True)
    stage = open_stage(tmp_path, "demo", "backbone")
    with pytest.raises(CacheDamaged, match="'features' holds NaN or inf"):
        stage.array("features")
    mapped = stage.array("features", mmap=True)
    assert np.isfinite(mapped[:8]).all()  # rows of the intact shards still read
    with pytest.raises(CacheDamaged, match="NaN or inf"):
        mapped[8:]


def test_a_later_edit_is_hashed_and_a_plain_copy_is_not_damage(tmp_path, monkeypatch):
    from qfeat.cache import integrity

    monkeypatch.setattr(integrity, "ALWAYS_HASH_BYTES", 0)
    folder = write_stage(tmp_path, manifest_for())
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "demo", copy / "demo", copy_function=shutil.copy)  # new mtimes
    assert open_stage(copy, "demo", "backbone").table()["item_id"].tolist() == IDS
    parquet = folder / "shard-00000.parquet"
    _overwrite(parquet, parquet.stat().st_size // 2, b"\x00\x01\x02")  # mtime moves on
    with pytest.raises(CacheDamaged, match="shard-00000.parquet does not match"):
        open_stage(tmp_path, "demo", "backbone").table()


def test_edited_manifest_is_damage_and_the_next_run_rewrites_it(tmp_path, qfeat):
    manifest = manifest_for()
    folder = write_stage(tmp_path, manifest)
    path = folder / "manifest.json"
    edited = json.loads(path.read_text())
    edited["config"]["size"] = int(edited["config"].get("size", 32)) + 1
    path.write_text(json.dumps(edited))
    stage = open_stage(tmp_path, "demo", "backbone")
    with pytest.raises(CacheDamaged, match="manifest.json was edited"):
        stage.table()
    result = qfeat("cache", "verify", "--cache-dir", str(tmp_path))
    assert result.exit_code == 1 and "manifest.json" in result.output
    create_stage_dir(tmp_path, "demo", manifest)  # what the next `qfeat features` run does
    assert json.loads(path.read_text())["config"] == manifest["config"]
    assert open_stage(tmp_path, "demo", "backbone").table()["item_id"].tolist() == IDS
    assert qfeat("cache", "verify", "--cache-dir", str(tmp_path)).exit_code == 0


def test_a_manifest_in_the_wrong_folder_is_damage(tmp_path):
    folder = write_stage(tmp_path, manifest_for())
    other = manifest_for(shard_size=5)  # sealed, but describes another fingerprint
    (folder / "manifest.json").write_text(json.dumps(create_and_read(tmp_path, other)))
    stage = next(s for s in list_stages(tmp_path, "demo", "backbone") if s.dir == folder)
    bad = verify_stage(stage)
    assert bad and bad[0].path.name == "manifest.json" and "not its folder's" in bad[0].reason
    repair(bad[0])
    assert not (folder / "manifest.json").exists()


def create_and_read(cache, manifest):
    folder = create_stage_dir(cache, "demo", manifest)
    return json.loads((folder / "manifest.json").read_text())


def test_edited_or_deleted_done_markers(tmp_path, qfeat):
    folder = write_stage(tmp_path, manifest_for())
    marker_path = folder / "shard-00001.done.json"
    marker = json.loads(marker_path.read_text())
    marker["rows"] = 3
    marker_path.write_text(json.dumps(marker))
    done, todo = split_done(folder, plan_shards(IDS, 4))
    assert [s.index for s in todo] == [1]  # the planner reruns it instead of trusting it
    with pytest.raises(CacheDamaged, match="shard-00001.done.json was edited"):
        open_stage(tmp_path, "demo", "backbone").table()
    (folder / "shard-00002.done.json").unlink()
    result = qfeat("cache", "verify", "--cache-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "shard-00001" in result.output and "shard-00002" in result.output
    assert "no done marker, but its data files are there" in result.output
    fixed = qfeat("cache", "verify", "--cache-dir", str(tmp_path), "--repair")
    assert fixed.exit_code == 0 and fixed.output.count("the next run recomputes it") == 2
    assert not (folder / "shard-00002.parquet").exists()
    assert qfeat("cache", "verify", "--cache-dir", str(tmp_path)).exit_code == 0


def test_training_on_a_damaged_cache_stops_with_the_fix(demo_videos, tmp_path, qfeat):
    """Issue 24.1 as reported: inf in the clip stage's HDF5 made `train scma --mode
    projection` exit 0 with NaN metrics."""
    cache = tmp_path / "cache"
    shutil.copytree(demo_videos.cache, cache)
    clip = open_stage(cache, "demo-video", "clip")
    index, marker = next(iter(clip.markers.items()))
    spec = marker["arrays"]["embeddings"]
    _overwrite(
        clip.dir / f"shard-{index:05d}.h5",
        spec["offset"],
        np.full(16, np.inf, np.float16).tobytes(),
    )
    result = qfeat("train", "scma", "demo-video", "--cache-dir", str(cache), "--runs-dir",
                   str(tmp_path / "runs"), "--mode", "projection", "--splits", "1")  # fmt: skip
    assert result.exit_code == 1
    assert "damaged cache" in result.output and "cache verify --repair" in result.output
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("metrics.json"))


def test_values_beyond_fp16_become_an_error_row_not_inf():
    """Issue 16: the cache writer stored an overflowing model output as inf."""
    from qfeat.pipeline.stages.base import storable

    fine = {"status": "ok", "error": None, "features": np.full((2, 3), 60000.0, np.float32)}
    assert storable(fine, ("features",)) is fine
    for bad in (7e4, np.inf, np.nan):
        values = np.zeros((2, 3), np.float32)
        values[1, 2] = bad
        row = storable({"status": "ok", "error": None, "features": values}, ("features",))
        assert row["status"] == "value_out_of_range" and "'features'" in row["error"]
    failed = {"status": "decode_error", "error": "x"}
    assert storable(failed, ("features",)) is failed
