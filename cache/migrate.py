"""``qfeat cache migrate``: seal the records of a cache written before seals existed.

Readers, the planner and ``qfeat cache verify`` take a manifest or done marker without
a seal as damage (a deleted seal hides an edit as well as an old writer does). A cache
from before seals is made trusted again once, here, and only where its records still
describe their files:

- a manifest is sealed when its content gives its folder's fingerprint (an edited
  setting gives another one and stays unsealed);
- a done marker is sealed when the full ``verify`` check of its shard passes with it
  (file sizes and checksums, row count, HDF5 shapes); otherwise it is left as it was,
  and ``qfeat cache verify --repair`` removes the shard so the next run recomputes it.

Records that already carry a seal are never touched, so running it twice does nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from qfeat.cache.fingerprint import fingerprint
from qfeat.cache.integrity import SEAL, seal
from qfeat.cache.layout import MANIFEST, SHARD_RE, write_json_atomic


@dataclass
class Migration:
    """What :func:`migrate` did: the records it sealed and those it could not."""

    sealed: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _manifest(folder: Path, out: Migration) -> None:
    path = folder / MANIFEST
    manifest = _read(path)
    if manifest is None or SEAL in manifest:
        return
    try:
        computed = fingerprint(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        out.refused.append((path, f"lacks {exc}"))
        return
    if computed != folder.name:
        out.refused.append((path, f"describes fingerprint {computed}, not its folder's"))
        return
    write_json_atomic(path, seal(manifest))
    out.sealed.append(path)


def _marker(folder: Path, index: int, path: Path, out: Migration) -> None:
    from qfeat.cache.verify import check_shard

    marker = _read(path)
    if marker is None or SEAL in marker:
        return
    original = path.read_text()
    write_json_atomic(path, seal(marker))
    if problem := check_shard(folder, index):
        path.write_text(original)  # the marker does not describe its files: not trusted
        out.refused.append((path, problem))
        return
    out.sealed.append(path)


def migrate(stage_dirs: list[Path]) -> Migration:
    """Seal every unsealed manifest and done marker in ``stage_dirs`` that still
    describes its folder (see the module docstring)."""
    out = Migration()
    for folder in stage_dirs:
        _manifest(folder, out)
        for path in sorted(folder.glob("shard-*.done.json")):
            if m := SHARD_RE.match(path.name):
                _marker(folder, int(m.group(1)), path, out)
    return out
