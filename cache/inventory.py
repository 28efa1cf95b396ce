"""What is in a cache: one entry per dataset/stage/fingerprint, and what `gc` may remove."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfeat.cache.layout import TMP_RE
from qfeat.cache.reader import Stage, default_stage, latest_fingerprint, list_stages

TMP_MIN_AGE_S = 15 * 60  # younger temp files may belong to a writer that is still running


def stage_names(cache_dir: Path) -> list[tuple[str, str]]:
    """(dataset, stage) pairs present under ``cache_dir``."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    return sorted(
        (d.name, s.name)
        for d in cache_dir.iterdir()
        if d.is_dir() and not d.name.startswith(".")
        for s in d.iterdir()
        if s.is_dir() and not s.name.startswith(".")
    )


def all_stages(cache_dir: Path) -> list[Stage]:
    return [st for ds, name in stage_names(cache_dir) for st in list_stages(cache_dir, ds, name)]


def entry(stage: Stage, in_use: bool = False) -> dict[str, Any]:
    """The `qfeat cache ls --json` object of one fingerprint folder; ``in_use``: it is the
    fingerprint readers and trainers open by default (:func:`qfeat.cache.reader.default_stage`)."""
    markers = stage.markers.values()
    return {
        "dataset": stage.dir.parent.parent.name,
        "stage": stage.name,
        "fingerprint": stage.fingerprint,
        "path": str(stage.dir),
        "complete": stage.complete,
        "shards_done": len(stage.markers),
        "shards_total": stage.shards_total,
        "items_ok": sum(m.get("ok", 0) for m in markers),
        "items_failed": sum(m.get("failed", 0) for m in markers),
        "bytes": sum(p.stat().st_size for p in stage.dir.iterdir() if p.is_file()),
        "created": stage.manifest.get("created"),
        "in_use": in_use,
    }


def entries(cache_dir: Path) -> list[dict[str, Any]]:
    """:func:`entry` of every fingerprint folder under ``cache_dir``, ``in_use`` filled."""
    out = []
    for dataset, name in stage_names(cache_dir):
        group = list_stages(cache_dir, dataset, name)
        chosen = default_stage(group, latest_fingerprint(cache_dir, dataset, name))
        out += [entry(s, chosen is not None and s.dir == chosen.dir) for s in group]
    return out


@dataclass(frozen=True)
class Garbage:
    path: Path
    reason: str
    bytes: int


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def find_garbage(cache_dir: Path, tmp_min_age_s: float = TMP_MIN_AGE_S) -> list[Garbage]:
    """Temp files older than ``tmp_min_age_s`` and superseded fingerprint folders.

    A fingerprint is superseded when a newer fingerprint of the same dataset/stage is
    complete, unless it is the one the last run completed (``latest.json``, what the
    trainers read) or a kept stage names it as upstream (its inputs stay).
    """
    cache_dir = Path(cache_dir)
    out: list[Garbage] = []
    if not cache_dir.is_dir():
        return out
    now = time.time()
    for path in sorted(cache_dir.rglob(".*.tmp-*")):
        if TMP_RE.match(path.name) and now - path.stat().st_mtime >= tmp_min_age_s:
            out.append(Garbage(path, "temporary file of an interrupted write", _size(path)))
    keep: list[Stage] = []
    candidates: list[Stage] = []
    for dataset, name in stage_names(cache_dir):
        stages = list_stages(cache_dir, dataset, name)
        complete = [i for i, s in enumerate(stages) if s.complete]
        newest_complete = complete[-1] if complete else -1
        latest = latest_fingerprint(cache_dir, dataset, name)
        for i, s in enumerate(stages):
            kept = i >= newest_complete or s.fingerprint == latest
            (keep if kept else candidates).append(s)
    referenced = {fp for s in keep for fp in s.manifest.get("upstream", {}).values()}
    for s in candidates:
        if s.fingerprint not in referenced:
            out.append(Garbage(s.dir, f"superseded {s.name} fingerprint", _size(s.dir)))
    return out
