"""Issue 37 and issue 40 item 2: a run reads one coherent basis of cached stages.

Small synthetic caches (two stages, ``backbone`` and ``regions`` linked by upstream),
so every selection rule is checked in milliseconds: a ``--limit`` run after a full run,
a partial run of another preset after a complete one, two configurations side by side,
a deleted done marker, a media file replaced in place.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from qfeat.cache.basis import coherent_sets, same_configs, select_basis, stale_shards
from qfeat.cache.fingerprint import media_hash
from qfeat.cache.items import write_items
from qfeat.cache.plan import plan_shards
from qfeat.cache.reader import CacheMissing
from qfeat.cache.writer import ShardWriter, create_stage_dir
from qfeat.errors import OptionError
from tests.cache_helpers import IDS, manifest_for, shard_arrays, shard_columns

NEEDED = ["regions", "backbone"]


def items(cache: Path, media: Path, ids=IDS) -> dict[str, Path]:
    """The dataset's items.parquet, each item a small file under ``media``."""
    media.mkdir(parents=True, exist_ok=True)
    paths = {}
    for i in ids:
        paths[i] = media / i.replace("/", "_")
        paths[i].write_bytes(i.encode())
    rows = [SimpleNamespace(item_id=i, path=p, mos=1.0, mos_01=0.5, split=None, group=None)
            for i, p in paths.items()]  # fmt: skip
    write_items(cache, "demo", rows)
    return paths


def stage(cache, name, *, ids=IDS, preset="tiny", created, upstream=None, skip=(), paths=None,
          **config):  # fmt: skip
    """One stage folder, every shard written (but ``skip``), media hashed when ``paths``."""
    sets = [f"{name}.v={config.get('v', 0)}"]
    m = manifest_for(stage=name, ids=ids, upstream=upstream or {}, preset=preset,
                     config={"seed": 0, **config}, sets=sets)  # fmt: skip
    m["created"] = created
    folder = create_stage_dir(cache, "demo", m)
    for shard in plan_shards(ids, 4):
        if shard.index not in skip:
            media = media_hash(paths[i] for i in shard.item_ids) if paths else None
            ShardWriter(folder, shard.index).write(
                shard_columns(shard.item_ids), shard_arrays(shard.item_ids), media_sha256=media
            )
    return m["fingerprint"]


def one_set(cache, *, ids=IDS, preset="tiny", when="2026-01-01", skip=(), paths=None, v=0):
    """``regions`` then ``backbone`` (built on those regions): a ``features`` run's set."""
    regions = stage(cache, "regions", ids=ids, preset=preset, created=f"{when}T00:00:00",
                    skip=skip, paths=paths, v=v)  # fmt: skip
    backbone = stage(cache, "backbone", ids=ids, preset=preset, created=f"{when}T00:00:01",
                     upstream={"regions": regions}, paths=paths, v=v)  # fmt: skip
    return {"regions": regions, "backbone": backbone}


def config(v: int) -> dict[str, dict]:
    """What `resolve_stage_configs` gives for the test stages made with ``v``."""
    return {name: {"seed": 0, "v": v} for name in NEEDED}


def test_a_limit_run_after_a_full_run_is_never_read_unless_named(tmp_path):
    items(tmp_path, tmp_path / "media")
    full = one_set(tmp_path)
    partial = one_set(tmp_path, ids=IDS[:4], when="2026-02-01")  # newer, 4 of 10 items
    chosen = select_basis(tmp_path, "demo", NEEDED)
    assert chosen.basis.fingerprints == full and chosen.basis.state == "complete"
    assert chosen.note is None  # a partial set is no alternative
    named = [b for b in coherent_sets(tmp_path, "demo", NEEDED) if b.fingerprints == partial][0]
    picked = select_basis(tmp_path, "demo", NEEDED, basis_id=named.id).basis
    assert picked.fingerprints == partial
    assert picked.record()["state"] == "partial" and picked.record()["items"] == 4
    assert "partial, 4 of 10 items" in picked.label()
    with pytest.raises(OptionError, match="--basis nope: no such set"):
        select_basis(tmp_path, "demo", NEEDED, basis_id="nope")


def test_a_partial_run_of_another_preset_never_mixes_with_a_complete_one(tmp_path):
    """Issue 37's first finding: a 2-item `--preset paper --stages backbone --limit 2`
    after a complete tiny cache. The trainer reads tiny's whole set; backbone alone
    (attention global) reads tiny's too, the paper backbone being partial."""
    items(tmp_path, tmp_path / "media")
    tiny = one_set(tmp_path)
    stage(tmp_path, "backbone", ids=IDS[:2], preset="paper", created="2026-03-01T00:00:00", v=9)
    assert select_basis(tmp_path, "demo", NEEDED).basis.fingerprints == tiny
    assert (
        select_basis(tmp_path, "demo", ["backbone"]).basis.fingerprints["backbone"]
        == (tiny["backbone"])
    )
    with pytest.raises(CacheMissing, match="qfeat features demo --preset paper"):
        select_basis(tmp_path, "demo", NEEDED, want=same_configs(config(9)),
                     wanted="--preset paper")  # fmt: skip


def test_two_configurations_side_by_side(tmp_path):
    """Two complete sets: the newest is read, the message names the other and the
    option that picks it; --preset and --set values pick one by what it was made with."""
    items(tmp_path, tmp_path / "media")
    old = one_set(tmp_path, preset="paper", v=1)
    new = one_set(tmp_path, when="2026-02-01", v=2)
    chosen = select_basis(tmp_path, "demo", NEEDED)
    assert chosen.basis.fingerprints == new
    older = chosen.others[0]
    assert older.fingerprints == old and f"--basis {older.id}" in chosen.note
    by_config = select_basis(tmp_path, "demo", NEEDED, want=same_configs(config(1)))
    assert by_config.basis.fingerprints == old
    only_backbone = same_configs({"backbone": config(1)["backbone"]})
    assert select_basis(tmp_path, "demo", NEEDED, want=only_backbone).basis.fingerprints == old
    assert select_basis(tmp_path, "demo", NEEDED, want=same_configs(config(2))).note is None
    other_constants = same_configs(config(1), {"backbone": {"prompt": "another qfeat's"}})
    with pytest.raises(CacheMissing, match="no cached set"):
        select_basis(tmp_path, "demo", NEEDED, want=other_constants)
    assert by_config.basis.command() == (
        "qfeat features demo --preset paper --set backbone.v=1 --set regions.v=1"
    )


def test_a_deleted_done_marker_stops_with_the_repair_command(tmp_path):
    """Issue 40 item 2: no silent fall-back to an older --limit set when a shard of the
    newest set lost its done marker."""
    items(tmp_path, tmp_path / "media")
    one_set(tmp_path, ids=IDS[:8])  # the older --limit 8 set
    newest = one_set(tmp_path, when="2026-02-01")
    marker = tmp_path / "demo" / "regions" / newest["regions"] / "shard-00001.done.json"
    marker.unlink()
    with pytest.raises(CacheMissing) as caught:
        select_basis(tmp_path, "demo", NEEDED)
    message = str(caught.value)
    assert f"regions {newest['regions']} lacks shard(s) 00001 of 3" in message
    assert "complete it with `qfeat features demo --preset tiny" in message


def test_a_media_file_replaced_in_place_makes_the_set_stale(tmp_path):
    """Issue 40 item 2: shards whose media changed since they were written are refused,
    naming the command that recomputes them (the planner reruns exactly those)."""
    paths = items(tmp_path, tmp_path / "media")
    fps = one_set(tmp_path, paths=paths)
    assert select_basis(tmp_path, "demo", NEEDED).basis.fingerprints == fps
    replaced = paths[IDS[5]]
    replaced.write_bytes(b"another image, another size")
    os.utime(replaced, ns=(1, 1))
    with pytest.raises(CacheMissing) as caught:
        select_basis(tmp_path, "demo", NEEDED)
    assert "shard(s) 00001 are stale" in str(caught.value)
    assert "qfeat features demo --preset tiny" in str(caught.value)
    basis = coherent_sets(tmp_path, "demo", NEEDED)[0]
    assert stale_shards(basis.stages["backbone"], {i: str(p) for i, p in paths.items()}) == [1]


def test_stages_that_do_not_belong_together_are_no_set(tmp_path):
    """A backbone built on other regions, or cached for other items, pairs with none."""
    items(tmp_path, tmp_path / "media")
    stage(tmp_path, "regions", created="2026-01-01T00:00:00")
    stage(tmp_path, "backbone", created="2026-01-01T00:00:01", upstream={"regions": "0" * 16})
    with pytest.raises(CacheMissing, match="do not belong together"):
        select_basis(tmp_path, "demo", NEEDED)
    with pytest.raises(CacheMissing, match="needs the 'describe' stage of demo"):
        select_basis(tmp_path, "demo", ["describe", "backbone"])


def test_running_a_configuration_again_makes_it_the_default(tmp_path):
    """The set every stage's last completed `qfeat features` run made (latest.json) is
    read by default, even when another complete set is newer."""
    from qfeat.cache.reader import mark_latest

    items(tmp_path, tmp_path / "media")
    old = one_set(tmp_path, v=1)
    new = one_set(tmp_path, when="2026-02-01", v=2)
    assert select_basis(tmp_path, "demo", NEEDED).basis.fingerprints == new
    for name, fingerprint in old.items():
        mark_latest(tmp_path, "demo", name, fingerprint)
    chosen = select_basis(tmp_path, "demo", NEEDED)
    assert chosen.basis.fingerprints == old and chosen.others[0].fingerprints == new
    mark_latest(tmp_path, "demo", "regions", new["regions"])  # no set is all last-run
    assert select_basis(tmp_path, "demo", NEEDED).basis.fingerprints == new
