"""Where everything lives inside a cache directory, and atomic file replacement.

::

    <cache-dir>/<dataset>/items.parquet
    <cache-dir>/<dataset>/<stage>/<fingerprint>/manifest.json
    <cache-dir>/<dataset>/<stage>/<fingerprint>/shard-00000.parquet
    <cache-dir>/<dataset>/<stage>/<fingerprint>/shard-00000.h5         (stages with arrays)
    <cache-dir>/<dataset>/<stage>/<fingerprint>/shard-00000.done.json  (written last)

Temporary files are named ``.<final name>.tmp-<pid>-<random>`` in the same folder, so a
crash never leaves a file under a final name that was not completely written.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
LATEST = "latest.json"  # <dataset>/<stage>/latest.json: the fingerprint the last run completed
ITEMS = "items.parquet"
TMP_RE = re.compile(r"^\..+\.tmp-\d+-[0-9a-f]+$")
SHARD_RE = re.compile(r"^shard-(\d{5})\.(parquet|h5|done\.json)$")


def stage_root(cache_dir: Path, dataset: str, stage: str) -> Path:
    return Path(cache_dir) / dataset / stage


def stage_dir(cache_dir: Path, dataset: str, stage: str, fingerprint: str) -> Path:
    return stage_root(cache_dir, dataset, stage) / fingerprint


def items_path(cache_dir: Path, dataset: str) -> Path:
    return Path(cache_dir) / dataset / ITEMS


def shard_name(index: int, kind: str) -> str:
    """``kind`` is ``parquet``, ``h5`` or ``done.json``."""
    return f"shard-{index:05d}.{kind}"


def tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_via_tmp(final: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` then fsync and ``os.replace`` onto ``final``."""
    tmp = tmp_name(final)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json_atomic(final: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_via_tmp(final, lambda tmp: tmp.write_text(text))
