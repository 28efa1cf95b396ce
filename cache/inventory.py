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


def entry(stage: Stage, in_use: bool = False, held_by: list[str] | None = None) -> dict[str, Any]:
    """The `qfeat cache ls --json` object of one fingerprint folder; ``in_use``: it is the
    fingerprint ``open_stage`` opens by default (:func:`qfeat.cache.reader.default_stage`;
    trainers read a basis, :mod:`qfeat.cache.basis`); ``held_by``: the runs trained on it
    (:mod:`qfeat.cache.holds`)."""
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
        "held_by": sorted(held_by or []),
    }


def entries(cache_dir: Path) -> list[dict[str, Any]]:
    """:func:`entry` of every fingerprint folder under ``cache_dir``, ``in_use`` filled."""
    from qfeat.cache.holds import held

    runs = held(cache_dir)
    out = []
    for dataset, name in stage_names(cache_dir):
        group = list_stages(cache_dir, dataset, name)
        chosen = default_stage(group, latest_fingerprint(cache_dir, dataset, name))
        out += [
            entry(s, chosen is not None and s.dir == chosen.dir, _holders(runs, s)) for s in group
        ]
    return out


@dataclass(frozen=True)
class Garbage:
    path: Path
    reason: str
    bytes: int
    held_by: tuple[str, ...] = ()  # runs trained on it: removed only with include_protected


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def find_garbage(
    cache_dir: Path, tmp_min_age_s: float = TMP_MIN_AGE_S, include_protected: bool = False
) -> list[Garbage]:
    """Temp files older than ``tmp_min_age_s``, superseded fingerprint folders, and
    registrations of runs whose folder is gone (:mod:`qfeat.cache.holds`).

    A fingerprint is superseded when a newer fingerprint of the same dataset/stage is
    complete, unless it is the one the last run completed (``latest.json``) or a kept
    stage names it as upstream (its inputs stay). A superseded folder a run was trained
    on is *protected*: listed with ``held_by`` (the runs) and kept, with its upstream,
    unless ``include_protected``.
    """
    from qfeat.cache.holds import held, holds

    cache_dir = Path(cache_dir)
    out: list[Garbage] = []
    if not cache_dir.is_dir():
        return out
    now = time.time()
    for path in sorted(cache_dir.rglob(".*.tmp-*")):
        if TMP_RE.match(path.name) and now - path.stat().st_mtime >= tmp_min_age_s:
            out.append(Garbage(path, "temporary file of an interrupted write", _size(path)))
    for hold in holds(cache_dir):
        if not hold.alive:
            reason = f"registration of run {hold.run}, whose folder {hold.path} is gone"
            out.append(Garbage(hold.file, reason, _size(hold.file)))
    runs = held(cache_dir)
    keep: list[Stage] = []
    protected: list[Stage] = []
    candidates: list[Stage] = []
    for dataset, name in stage_names(cache_dir):
        stages = list_stages(cache_dir, dataset, name)
        complete = [i for i, s in enumerate(stages) if s.complete]
        newest_complete = complete[-1] if complete else -1
        latest = latest_fingerprint(cache_dir, dataset, name)
        for i, s in enumerate(stages):
            if i >= newest_complete or s.fingerprint == latest:
                keep.append(s)
            elif _holders(runs, s) and not include_protected:
                protected.append(s)
            else:
                candidates.append(s)
    # what kept stages are built on stays, transitively (text -> describe -> regions)
    referenced: set[str] = set()
    grown = keep + protected
    while grown:
        referenced |= {fp for s in grown for fp in (s.manifest.get("upstream") or {}).values()}
        grown = [s for s in candidates if s.fingerprint in referenced]
        candidates = [s for s in candidates if s.fingerprint not in referenced]
    for s in protected:
        out.append(Garbage(s.dir, f"superseded {s.name} fingerprint", _size(s.dir),
                           tuple(_holders(runs, s))))  # fmt: skip
    for s in candidates:
        out.append(Garbage(s.dir, f"superseded {s.name} fingerprint", _size(s.dir),
                           tuple(_holders(runs, s))))  # fmt: skip
    return out


def _holders(runs: dict[tuple[str, str, str], list[str]], stage: Stage) -> list[str]:
    return runs.get((stage.dir.parent.parent.name, stage.name, stage.fingerprint), [])
