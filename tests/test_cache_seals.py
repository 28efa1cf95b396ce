"""Issue 40.1: a manifest or done marker without a seal is damage for `cache verify`, the
planner and every reader; `qfeat cache migrate` seals a pre-seal cache once, checking
each record against its files first."""

from __future__ import annotations

import json

import pytest

from qfeat.cache.integrity import SEAL, CacheDamaged
from qfeat.cache.plan import plan_shards, split_done
from qfeat.cache.reader import open_stage
from qfeat.cache.writer import create_stage_dir
from tests.cache_helpers import IDS, manifest_for, write_stage


def _unseal(path, **edits):
    record = json.loads(path.read_text())
    del record[SEAL]
    for key, value in edits.items():
        record[key] = value
    path.write_text(json.dumps(record))
    return record


def test_an_unsealed_edited_manifest_is_damage_everywhere(tmp_path, qfeat):
    manifest = manifest_for()
    folder = write_stage(tmp_path, manifest)
    path = folder / "manifest.json"
    record = json.loads(path.read_text())
    config = {**record["config"], "size": int(record["config"].get("size", 32)) + 1}
    _unseal(path, config=config)
    with pytest.raises(CacheDamaged, match="manifest.json has no seal"):
        open_stage(tmp_path, "demo", "backbone").table()
    result = qfeat("cache", "verify", "--cache-dir", str(tmp_path))
    assert result.exit_code == 1 and "manifest.json has no seal" in result.output
    assert "qfeat cache migrate" in result.output
    create_stage_dir(tmp_path, "demo", manifest)  # the next `features` run writes it again
    assert json.loads(path.read_text())["config"] == manifest["config"]
    # migrate refuses to seal it: the edited setting gives another fingerprint
    _unseal(path, config=config)
    migrated = qfeat("cache", "migrate", "--cache-dir", str(tmp_path))
    assert migrated.exit_code == 1 and "not sealed" in migrated.output
    assert SEAL not in json.loads(path.read_text())


def test_an_unsealed_edited_marker_is_rerun_refused_and_reported(tmp_path, qfeat):
    folder = write_stage(tmp_path, manifest_for())
    _unseal(folder / "shard-00001.done.json", rows=3)
    done, todo = split_done(folder, plan_shards(IDS, 4))
    assert [s.index for s in todo] == [1]  # the planner does not trust it
    with pytest.raises(CacheDamaged, match="shard-00001.done.json has no seal"):
        open_stage(tmp_path, "demo", "backbone").table()
    result = qfeat("cache", "verify", "--cache-dir", str(tmp_path))
    assert result.exit_code == 1 and "shard-00001" in result.output
    migrated = qfeat("cache", "migrate", "--cache-dir", str(tmp_path))
    assert migrated.exit_code == 1
    assert "not sealed" in migrated.output and "rows" in migrated.output
    assert "cache verify --repair" in migrated.output


def test_migrate_seals_an_intact_pre_seal_cache_once(tmp_path, qfeat):
    folder = write_stage(tmp_path, manifest_for())
    records = [folder / "manifest.json", *sorted(folder.glob("shard-*.done.json"))]
    for path in records:
        _unseal(path)  # as a writer from before seals left them
    assert qfeat("cache", "verify", "--cache-dir", str(tmp_path)).exit_code == 1
    migrated = qfeat("cache", "migrate", "--cache-dir", str(tmp_path))
    assert migrated.exit_code == 0, migrated.output
    assert f"{len(records)} records sealed, 0 not sealed" in migrated.output
    assert qfeat("cache", "verify", "--cache-dir", str(tmp_path)).exit_code == 0
    assert open_stage(tmp_path, "demo", "backbone").table()["item_id"].tolist() == IDS
    again = qfeat("cache", "migrate", "--cache-dir", str(tmp_path))
    assert again.exit_code == 0 and "nothing to migrate" in again.output
