"""The per-dataset item table ``<cache-dir>/<dataset>/items.parquet``.

Written by the runner from the adapter so trainers need nothing but the cache. Columns:
``item_id`` (str), ``path`` (str, absolute), ``mos`` (float64, native scale), ``mos_01``
(float64, 1 = best), ``split`` (str or null), ``group`` (str or null).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cache.layout import items_path, write_via_tmp
from pipeline.datasets.base import DatasetError, Item

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


def write_items(cache_dir: Path, dataset: str, items: Iterable[Item]) -> Path:
    rows = list(items)
    table = pa.table(
        {
            "item_id": [i.item_id for i in rows],
            "path": [str(Path(i.path).resolve()) for i in rows],
            "mos": [i.mos for i in rows],
            "mos_01": [i.mos_01 for i in rows],
            "split": [i.split for i in rows],
            "group": [i.group for i in rows],
        },
        schema=SCHEMA,
    )
    path = items_path(cache_dir, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_via_tmp(path, lambda tmp: pq.write_table(table, tmp))
    return path


def read_items(cache_dir: Path, dataset: str) -> pd.DataFrame:
    path = items_path(cache_dir, dataset)
    if not path.is_file():
        raise DatasetError(
            f"no item table for dataset '{dataset}' at {path}; run `qfeat features {dataset}` first"
        )
    return pq.read_table(path).to_pandas()
