"""Writing one shard: Parquet table (+ HDF5 arrays), then the done marker, atomically.

Order of operations, so a crash at any point leaves either the previous complete shard
or nothing a reader would use:

1. remove an old done marker of this shard (a retry must not point at replaced files);
2. write the Parquet table and the HDF5 arrays under temporary names, fsync;
3. ``os.replace`` them onto their final names;
4. write the done marker (rows, ok/failed, timings, bytes and sha256 of each file) the
   same way. Readers and the planner only trust shards that have a marker.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from qfeat.cache.fingerprint import file_sha256, items_hash
from qfeat.cache.integrity import seal
from qfeat.cache.layout import fsync_dir, shard_name, tmp_name, write_json_atomic

REQUIRED_COLUMNS = ("item_id", "status", "error")
OK = "ok"


def to_table(columns: dict[str, Any] | pa.Table) -> pa.Table:
    table = columns if isinstance(columns, pa.Table) else pa.table(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"shard table lacks required column(s): {', '.join(missing)}")
    if table.num_rows and not pa.types.is_string(table.schema.field("error").type):
        table = table.set_column(
            table.schema.get_field_index("error"),
            "error",
            table.column("error").cast(pa.string()),
        )
    return table


def prepare_arrays(arrays: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """Floating arrays become fp16; others (masks, indices) keep their dtype."""
    out = {}
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.shape[:1] != (rows,):
            raise ValueError(f"array '{name}' has {arr.shape[:1]} rows, the table has {rows}")
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float16, copy=False)
        elif arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        out[name] = np.ascontiguousarray(arr)
    return out


def _write_h5(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import h5py

    # Contiguous (unchunked, uncompressed) datasets: whole-array reads are one read
    # call and the reader can memory-map them.
    with h5py.File(path, "w", libver="latest") as f:
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr)


def _h5_offsets(path: Path) -> dict[str, int | None]:
    """Byte offset of each contiguous dataset in the file (None for empty ones)."""
    import h5py

    with h5py.File(path, "r") as f:
        return {name: f[name].id.get_offset() for name in f}


def _out_of_space(exc: BaseException | None) -> bool:
    """A full disk, an exhausted quota or a file-size limit, in ``exc`` or the errors it
    was raised from (pyarrow and h5py report them in the message, and h5py raises a
    RuntimeError on close after the failed write)."""
    codes = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    texts = ("No space left", "Disk quota", "File too large", *(f"errno = {c}," for c in codes))
    while exc is not None:
        if getattr(exc, "errno", None) in codes or any(t in str(exc) for t in texts):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class ShardWriter:
    """Writes shard ``index`` of the stage folder ``stage_dir`` (which must exist)."""

    def __init__(self, stage_dir: Path, index: int):
        self.dir = Path(stage_dir)
        self.index = index
        self.parquet = self.dir / shard_name(index, "parquet")
        self.h5 = self.dir / shard_name(index, "h5")
        self.marker = self.dir / shard_name(index, "done.json")

    def write(
        self,
        columns: dict[str, Any] | pa.Table,
        arrays: dict[str, np.ndarray] | None = None,
        timings: dict[str, float] | None = None,
        media_sha256: str | None = None,
    ) -> dict[str, Any]:
        """Write the shard; returns the done record (also the marker's content).

        ``media_sha256``: :func:`qfeat.cache.fingerprint.media_hash` of the shard's media files
        as they were read, so the planner can tell when one changed in place. A full disk
        (or quota, or file-size limit) raises an OSError naming the folder and the fix,
        with no file of this shard left that a reader would use."""
        try:
            return self._write(columns, arrays, timings, media_sha256)
        except (OSError, RuntimeError) as exc:
            if not _out_of_space(exc):
                raise
            raise OSError(
                getattr(exc, "errno", None) or errno.ENOSPC,
                f"no space left writing shard {self.index} to {self.dir}; "
                "free space there (or use another --cache-dir), then run the same command "
                "again: finished shards are kept",
            ) from exc

    def _write(self, columns, arrays, timings, media_sha256) -> dict[str, Any]:
        started = time.perf_counter()
        table = to_table(columns)
        dense = prepare_arrays(arrays or {}, table.num_rows)
        if self.marker.exists():
            self.marker.unlink()
        pending: list[tuple[Path, Path]] = []
        try:
            tmp = tmp_name(self.parquet)
            pending.append((tmp, self.parquet))
            pq.write_table(table, tmp)
            offsets: dict[str, int | None] = {}
            if dense:
                tmp = tmp_name(self.h5)
                pending.append((tmp, self.h5))
                _write_h5(tmp, dense)
                offsets = _h5_offsets(tmp)
            files = {}
            for tmp, final in pending:
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                files[final.name] = {"bytes": tmp.stat().st_size, "sha256": file_sha256(tmp)}
            for tmp, final in pending:
                os.replace(tmp, final)
        finally:
            for tmp, _ in pending:
                if tmp.exists():
                    tmp.unlink()
        if not dense and self.h5.exists():
            self.h5.unlink()  # a retry that no longer has arrays
        fsync_dir(self.dir)
        status = table.column("status").to_pylist()
        record = {
            "shard": self.index,
            "rows": table.num_rows,
            "ok": sum(1 for s in status if s == OK),
            "failed": sum(1 for s in status if s != OK),
            "items_sha256": items_hash(table.column("item_id").to_pylist()),
            **({"media_sha256": media_sha256} if media_sha256 else {}),
            "files": files,
            "arrays": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype), "offset": offsets.get(k)}
                for k, v in dense.items()
            },
            "timings": {**(timings or {}), "write_s": round(time.perf_counter() - started, 4)},
            "written": time.time(),
        }
        record = seal(record)
        write_json_atomic(self.marker, record)
        fsync_dir(self.dir)
        return record


def create_stage_dir(cache_dir: Path, dataset: str, manifest: dict[str, Any]) -> Path:
    """Create ``<cache>/<dataset>/<stage>/<fingerprint>/`` and its manifest (once).

    A resumed run finds the manifest already there and leaves it (and its creation
    time) alone; concurrent creators write identical content atomically. A manifest
    that was edited, or does not describe its folder, is written again from ``manifest``
    (the run's own, whose fingerprint is the folder's name).
    """
    import json

    from qfeat.cache.integrity import manifest_damage
    from qfeat.cache.layout import MANIFEST, stage_dir

    folder = stage_dir(cache_dir, dataset, manifest["stage"], manifest["fingerprint"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MANIFEST
    try:
        present = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        present = None  # unreadable: written again
    if not isinstance(present, dict) or manifest_damage(folder, present):
        write_json_atomic(path, seal(manifest))
    return folder
