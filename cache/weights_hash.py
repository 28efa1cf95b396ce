"""sha256 of model weight files, remembered across runs.

Every ``qfeat features`` run and every ``qfeat predict`` hashes the local weights of its
models to tell whether they are the ones a cache was made with; for a 2.5 GB SAM
checkpoint or a 15 GB vision-language model folder that is tens of seconds each time.
The digest is therefore kept in a small JSON file, keyed on the file's resolved path
with its size, mtime_ns, ctime_ns and inode (the stat fields git's index checks): a
change to any of them hashes the file again. The file is
``$QFEAT_HASH_CACHE`` or ``~/.cache/qfeat/weights-sha256.json``; deleting it is always
safe. Only weights go through here: shard checksums (``qfeat cache verify``) are
always computed from the bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from qfeat.cache.fingerprint import file_sha256
from qfeat.cache.layout import write_via_tmp

MAX_ENTRIES = 4096


def store_path() -> Path:
    value = os.environ.get("QFEAT_HASH_CACHE")
    if value:
        return Path(value).expanduser()
    return Path.home() / ".cache" / "qfeat" / "weights-sha256.json"


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load(store: Path) -> dict[str, dict]:
    try:
        data = json.loads(store.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(store: Path, entries: dict[str, dict]) -> None:
    """Atomic replace, oldest entries dropped past ``MAX_ENTRIES`` (insertion order); a
    store that cannot be written (read-only home) is skipped."""
    if len(entries) > MAX_ENTRIES:
        entries = dict(list(entries.items())[-MAX_ENTRIES:])
    text = json.dumps(entries)
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        write_via_tmp(store, lambda tmp: tmp.write_text(text))
    except OSError:
        pass


def weights_sha256s(paths: Iterable[Path]) -> list[str]:
    """sha256 of each of ``paths``, from the store when its stat fields are unchanged;
    the store is read once and written once (only when something was hashed)."""
    store = store_path()
    entries = _load(store)
    digests, changed = [], False
    for path in paths:
        path = Path(path).resolve()
        stamp = _stamp(path)
        entry = entries.get(str(path))
        if isinstance(entry, dict) and entry.get("stat") == stamp and entry.get("sha256"):
            digests.append(str(entry["sha256"]))
            continue
        digest = file_sha256(path)
        if _stamp(path) == stamp:  # not changed while it was read
            entries.pop(str(path), None)  # re-insert: most recent last
            entries[str(path)] = {"stat": stamp, "sha256": digest}
            changed = True
        digests.append(digest)
    if changed:
        _save(store, entries)
    return digests


def weights_sha256(path: Path) -> str:
    """sha256 of one file, as :func:`weights_sha256s`."""
    return weights_sha256s([path])[0]
