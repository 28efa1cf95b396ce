"""Planning for the runner: deterministic shards, and which of them are already done."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfeat.cache.fingerprint import file_sha256, items_hash
from qfeat.cache.integrity import file_problem, seal_problem
from qfeat.cache.layout import shard_name


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` holds ``item_ids`` (a slice of the item list, in order)."""

    index: int
    item_ids: tuple[str, ...]


def plan_shards(item_ids: list[str], shard_size: int) -> list[Shard]:
    if shard_size < 1:
        raise ValueError("shard size must be at least 1")
    return [
        Shard(i // shard_size, tuple(item_ids[i : i + shard_size]))
        for i in range(0, len(item_ids), shard_size)
    ]


def shards_holding(where: dict[str, int], item_ids: tuple[str, ...] | list[str]) -> list[int]:
    """The upstream shards (``where``: item_id -> shard index) holding ``item_ids``: what
    one downstream shard reads. With the same item list and shard size that is one shard,
    so reading upstream costs each item once over a stage (linear in N)."""
    return sorted({where[i] for i in item_ids if i in where})


def read_marker(stage_dir: Path, index: int) -> dict[str, Any] | None:
    path = Path(stage_dir) / shard_name(index, "done.json")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def shard_problem(
    stage_dir: Path,
    index: int,
    item_ids: tuple[str, ...] | None = None,
    checksums: bool = True,
    media_sha256: str | None = None,
) -> str | None:
    """None when shard ``index`` is complete and intact, else why it is not.

    Complete means: the done marker is present, parses and keeps its seal, every file it
    lists exists with the recorded size, when ``item_ids`` is given the marker was
    written for exactly those items, and when ``media_sha256`` is given (and the marker
    records one) the media files still have the sizes and mtimes they had when the shard
    was written. ``checksums``: hash every file (``qfeat cache verify``); otherwise the
    readers' rule (:func:`qfeat.cache.integrity.file_problem`: small files and files
    modified after their marker are hashed, once per process), so planning a run over
    a large cache does not re-read all of it.
    """
    marker = read_marker(stage_dir, index)
    if marker is None:
        return "no done marker"
    if problem := seal_problem(marker):
        return f"the done marker {problem}"
    if item_ids is not None and marker.get("items_sha256") != items_hash(item_ids):
        return "written for a different item list"
    recorded = marker.get("media_sha256")
    if media_sha256 is not None and recorded is not None and recorded != media_sha256:
        return "a media file changed (size or mtime) since the shard was written"
    if not marker.get("files"):
        return "the done marker lists no files"
    try:
        marker_mtime = (Path(stage_dir) / shard_name(index, "done.json")).stat().st_mtime_ns
    except OSError:  # removed since it was read (a writer retrying this shard)
        return "no done marker"
    for name, info in marker["files"].items():
        path = Path(stage_dir) / name
        if not checksums:
            if problem := file_problem(path, info, marker_mtime):
                return problem
            continue
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != info.get("bytes"):
            return f"{name} has {path.stat().st_size} bytes, the marker says {info.get('bytes')}"
        if file_sha256(path) != info.get("sha256"):
            return f"{name} does not match its checksum"
    return None


def split_done(
    stage_dir: Path,
    shards: list[Shard],
    checksums: bool = False,
    force: bool = False,
    media: dict[int, str] | None = None,
    retry_failed: bool = False,
) -> tuple[list[Shard], list[Shard]]:
    """``(done, todo)``: shards to skip and shards that must (re)run. ``media`` maps a
    shard index to the :func:`qfeat.cache.fingerprint.media_hash` of its files now.
    ``retry_failed``: complete shards that hold error rows run again too (a transient
    failure, or a file fixed with its old size and mtime); the others are kept."""
    if force:
        return [], list(shards)
    media = media or {}
    done, todo = [], []
    for shard in shards:
        problem = shard_problem(
            stage_dir, shard.index, shard.item_ids, checksums, media.get(shard.index)
        )
        if problem is None and retry_failed:
            marker = read_marker(stage_dir, shard.index) or {}
            problem = "holds error rows" if marker.get("failed") else None
        ok = problem is None
        (done if ok else todo).append(shard)
    return done, todo
