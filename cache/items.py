"""The per-dataset item table ``<cache-dir>/<dataset>/items.parquet``.

Written by the runner from the adapter so trainers need nothing but the cache. Columns:
``item_id`` (str), ``path`` (str, absolute), ``mos`` (float64, native scale), ``mos_01``
(float64, 1 = best), ``split`` (str or null), ``group`` (str or null).

The table is the union over runs: a run rewrites the rows of its own items and keeps the
others, so a ``--limit`` run after a full one does not hide items from the runs, reports
and evaluations made on the full cache. Which items a trainer uses is decided by the stage
it reads, never by this table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from qfeat.cache.layout import items_path, write_via_tmp
from qfeat.errors import DatasetError


class Item(Protocol):
    """What the table stores of a dataset item (``qfeat.pipeline.datasets.base.Item``
    has these fields; the cache does not import the pipeline)."""

    item_id: str
    path: Path
    mos: float
    mos_01: float
    split: str | None
    group: str | None


SCALE_KEY = "qfeat.score_scale"
SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("path", pa.string()),
        ("mos", pa.float64()),
        ("mos_01", pa.float64()),
        ("split", pa.string()),
        ("group", pa.string()),
    ]
)


def write_items(
    cache_dir: Path, dataset: str, items: Iterable[Item], scale: dict[str, Any] | None = None
) -> Path:
    """Write ``items`` into the table: their rows replace the stored ones in place, new
    items are appended in the given order, stored items not among them are kept.

    ``scale`` (``{"min", "max", "higher_is_better"}``: the native score range behind
    ``mos_01``) is stored in the file's metadata, replacing the one stored before (or
    kept when None); :func:`read_scale` gives it back.

    The read-modify-write holds ``<dataset>/.items.parquet.lock`` (a file lock), so two
    runs writing items of one dataset at once both keep their rows."""
    from filelock import FileLock

    rows = [_row(i) for i in items]
    path = items_path(cache_dir, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.parent / f".{path.name}.lock"), timeout=600):
        return _merge_and_write(path, rows, scale)


def _merge_and_write(path: Path, rows: list[dict[str, Any]], scale: dict[str, Any] | None) -> Path:
    if path.is_file():
        by_id = {r["item_id"]: r for r in rows}
        stored_table = pq.read_table(path)
        if scale is None:
            scale = _scale_of(stored_table.schema)
        stored = stored_table.cast(SCHEMA).to_pylist()
        known = {r["item_id"] for r in stored}
        rows = [by_id.get(r["item_id"], r) for r in stored] + [
            r for r in rows if r["item_id"] not in known
        ]
    schema = SCHEMA.with_metadata({SCALE_KEY: json.dumps(scale)}) if scale else SCHEMA
    table = pa.Table.from_pylist(rows, schema=schema)
    write_via_tmp(path, lambda tmp: pq.write_table(table, tmp))
    return path


def _row(item: Item) -> dict:
    return {
        "item_id": item.item_id,
        "path": str(Path(item.path).resolve()),
        "mos": item.mos,
        "mos_01": item.mos_01,
        "split": item.split,
        "group": item.group,
    }


def read_items(cache_dir: Path, dataset: str) -> pd.DataFrame:
    path = items_path(cache_dir, dataset)
    if not path.is_file():
        raise DatasetError(
            f"no item table for dataset '{dataset}' at {path}; run `qfeat features {dataset}` first"
        )
    return pq.read_table(path).to_pandas()


def read_scale(cache_dir: Path, dataset: str) -> dict[str, Any] | None:
    """The score scale stored with the item table, or None (tables written before qfeat
    stored it, or a missing table)."""
    path = items_path(cache_dir, dataset)
    if not path.is_file():
        return None
    return _scale_of(pq.read_schema(path))


def _scale_of(schema: pa.Schema) -> dict[str, Any] | None:
    stored = (schema.metadata or {}).get(SCALE_KEY.encode())
    return json.loads(stored) if stored else None
