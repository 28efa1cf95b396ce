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
import tempfile
from pathlib import Path

from cache.fingerprint import file_sha256

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
    """Atomic replace; a store that cannot be written (read-only home) is skipped."""
    if len(entries) > MAX_ENTRIES:
        entries = dict(list(entries.items())[-MAX_ENTRIES:])
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".weights-sha256-", dir=store.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f)
        os.replace(tmp, store)
    except OSError:
        pass


def weights_sha256(path: Path) -> str:
    """sha256 of ``path``, from the store when its stat fields are unchanged."""
    path = Path(path).resolve()
    stamp = _stamp(path)
    store = store_path()
    entries = _load(store)
    entry = entries.get(str(path))
    if isinstance(entry, dict) and entry.get("stat") == stamp and entry.get("sha256"):
        return str(entry["sha256"])
    digest = file_sha256(path)
    if _stamp(path) == stamp:  # not changed while it was read
        entries.pop(str(path), None)
        entries[str(path)] = {"stat": stamp, "sha256": digest}
        _save(store, entries)
    return digest
