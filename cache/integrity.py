"""Damage a reader must notice before it trusts a shard: seals on the JSON records, and
cheap checks of the data files against their done markers.

- Every done marker and manifest carries ``seal_sha256``, the sha256 of its own
  canonical JSON without that key; an edited record no longer matches, and a record
  without a seal is damage too (a deleted seal hides an edit just as well). Caches
  written before seals existed are sealed once by ``qfeat cache migrate``
  (:mod:`qfeat.cache.migrate`), which checks each record against its files first.
- A data file is intact when it has the size its marker records and either was not
  modified after the marker was written, or (modified later, e.g. copied without
  keeping times; or small) still matches the marker's sha256. Each file is hashed at
  most once per process (keyed by path, size and mtime), so repeated reads stay cheap.

Readers (:mod:`qfeat.cache.reader`) raise :class:`CacheDamaged` naming the file and the
fix; ``qfeat cache verify`` reports the same problems and ``--repair`` removes them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qfeat.cache.fingerprint import canonical_json, file_sha256, sha256_text
from qfeat.errors import DatasetError

SEAL = "seal_sha256"
ALWAYS_HASH_BYTES = int(os.environ.get("QFEAT_HASH_ON_READ_BYTES", 64 << 20))
FIX = "run `qfeat cache verify --repair`, then the same `qfeat features` command recomputes it"
UNSEALED = (
    "has no seal (edited, or written before seals: `qfeat cache migrate` seals intact "
    "records of such a cache once)"
)

_hashed: dict[tuple[str, int, int], str] = {}


class CacheDamaged(DatasetError):
    """A cached file or record is not what its done marker or manifest says."""


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with its seal (any old seal replaced)."""
    body = {k: v for k, v in record.items() if k != SEAL}
    return {**body, SEAL: sha256_text(canonical_json(body))}


def seal_problem(record: dict[str, Any]) -> str | None:
    """None when ``record`` carries a seal that matches its content."""
    if SEAL not in record:
        return UNSEALED
    body = {k: v for k, v in record.items() if k != SEAL}
    if sha256_text(canonical_json(body)) != record[SEAL]:
        return "was edited after it was written (its seal does not match)"
    return None


def _sha256_once(path: Path, stat: os.stat_result) -> str:
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _hashed:
        _hashed[key] = file_sha256(path)
    return _hashed[key]


def file_problem(path: Path, info: dict[str, Any], marker_mtime_ns: int) -> str | None:
    """None when ``path`` matches its marker entry ``info`` (``bytes``, ``sha256``)."""
    try:
        stat = path.stat()
    except OSError:
        return f"{path.name} is missing"
    if stat.st_size != info.get("bytes"):
        return f"{path.name} has {stat.st_size} bytes, its done marker says {info.get('bytes')}"
    suspect = stat.st_mtime_ns > marker_mtime_ns or stat.st_size <= ALWAYS_HASH_BYTES
    if suspect and info.get("sha256") and _sha256_once(path, stat) != info["sha256"]:
        return f"{path.name} does not match its checksum"
    return None


def shard_damage(stage_dir: Path, index: int, marker: dict[str, Any]) -> str | None:
    """Why shard ``index`` (with done marker ``marker``) must not be read, or None."""
    from qfeat.cache.layout import shard_name

    if problem := seal_problem(marker):
        return f"{shard_name(index, 'done.json')} {problem}"
    marker_path = Path(stage_dir) / shard_name(index, "done.json")
    try:
        marker_mtime = marker_path.stat().st_mtime_ns
    except OSError:
        return f"{marker_path.name} is missing"
    for name, info in marker.get("files", {}).items():
        if problem := file_problem(Path(stage_dir) / name, info, marker_mtime):
            return problem
    return None


def manifest_damage(folder: Path, manifest: dict[str, Any]) -> str | None:
    """Why a stage folder's manifest must not be trusted, or None: an edited manifest,
    or one whose content gives another fingerprint than the folder's name."""
    from qfeat.cache.fingerprint import fingerprint

    if problem := seal_problem(manifest):
        return f"manifest.json {problem}"
    try:
        computed = fingerprint(manifest)
    except (KeyError, ValueError) as exc:
        return f"manifest.json is incomplete ({exc})"
    if computed != Path(folder).name:
        return f"manifest.json describes fingerprint {computed}, not its folder's {folder.name}"
    return None


def damaged(where: Path, problem: str) -> CacheDamaged:
    """The error readers raise: what is damaged, where, and the fix."""
    return CacheDamaged(f"damaged cache in {where}: {problem}; {FIX}")
