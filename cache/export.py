"""``qfeat cache export``: one cached stage in a form other code reads without qfeat.

- ``npy``: ``table.parquet`` (the stage's rows: ``item_id``, ``status``, ``error`` and
  its columns) and one ``<array>.npy`` per array, rows aligned with the table (dtype as
  cached: fp16 floats, uint8 masks), written in chunks so arrays larger than RAM pass;
- ``hf``: ``data.parquet`` with every array as a fixed-size list column (one flattened
  row per item; each array's shape in the file's metadata, ``qfeat.shapes``), which
  Hugging Face ``datasets`` loads with ``load_dataset("parquet", data_files=...)``;
- ``webdataset``: ``shard-NNNNNN.tar`` files of up to 1,000 items, each item as
  ``<key>.json`` (its row) and ``<key>.<array>.npy``, the layout the ``webdataset``
  library reads (keys are the row numbers, the item id is in the JSON).

Every format also writes ``manifest.json`` (the stage's, so the fingerprint, model and
settings travel with the data). Only ``ok`` rows are exported unless ``all_rows``.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from qfeat.cache.reader import open_stage
from qfeat.errors import DatasetError

FORMATS = ("npy", "hf", "webdataset")
CHUNK = 1024  # rows per write
TAR_ITEMS = 1000


def export_stage(
    cache_dir: Path,
    dataset: str,
    stage: str,
    fmt: str,
    out: Path,
    *,
    fingerprint: str | None = None,
    all_rows: bool = False,
    overwrite: bool = False,
) -> list[str]:
    """Write ``dataset``/``stage`` to the folder ``out`` in ``fmt``; returns the names of
    the files written. A folder that holds anything is refused unless ``overwrite``
    (then same-named files are replaced, others left alone), and so is a file."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file; name a folder (a new one is created)")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if present and not overwrite:
        raise DatasetError(
            f"--out {out} is not empty ({len(present)} entries, e.g. {present[0]}); name a new "
            "or empty folder, or pass --overwrite to replace the files the export writes"
        )
    st = open_stage(cache_dir, dataset, stage, fingerprint)
    table = st.table()
    rows = np.arange(len(table)) if all_rows else np.flatnonzero(table["status"] == "ok")
    table = table.iloc[rows].reset_index(drop=True)
    arrays = {name: st.array(name, mmap=True) for name in st.array_names()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_text(json.dumps(st.manifest, indent=2, default=str) + "\n")
    written = {"npy": _npy, "hf": _hf, "webdataset": _webdataset}[fmt](table, arrays, rows, out)
    return sorted(["manifest.json", *written])


def _npy(table, arrays, rows: np.ndarray, out: Path) -> list[str]:
    table.to_parquet(out / "table.parquet", index=False)
    for name, values in arrays.items():
        target = np.lib.format.open_memmap(
            out / f"{name}.npy", mode="w+", dtype=values.dtype, shape=(len(rows), *values.shape[1:])
        )
        for start in range(0, len(rows), CHUNK):
            target[start : start + CHUNK] = values[rows[start : start + CHUNK]]
        target.flush()
        del target
    return ["table.parquet", *(f"{name}.npy" for name in arrays)]


def _hf(table, arrays, rows: np.ndarray, out: Path) -> list[str]:
    shapes = {name: list(values.shape[1:]) for name, values in arrays.items()}
    writer = None
    try:
        for start in range(0, len(rows), CHUNK):
            part = pa.Table.from_pandas(table.iloc[start : start + CHUNK], preserve_index=False)
            for name, values in arrays.items():
                block = np.asarray(values[rows[start : start + CHUNK]])
                flat = pa.array(block.reshape(len(block), -1).ravel())
                part = part.append_column(
                    name, pa.FixedSizeListArray.from_arrays(flat, int(np.prod(shapes[name])))
                )
            if writer is None:
                schema = part.schema.with_metadata({"qfeat.shapes": json.dumps(shapes)})
                writer = pq.ParquetWriter(out / "data.parquet", schema)
            writer.write_table(part.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    return ["data.parquet"] if writer is not None else []


def _webdataset(table, arrays, rows: np.ndarray, out: Path) -> list[str]:
    records = json.loads(table.to_json(orient="records"))

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), 0  # reproducible archives
        tar.addfile(info, io.BytesIO(data))

    names = []
    for shard, start in enumerate(range(0, len(rows), TAR_ITEMS)):
        names.append(f"shard-{shard:06d}.tar")
        with tarfile.open(out / names[-1], "w") as tar:
            for offset in range(start, min(start + TAR_ITEMS, len(rows))):
                key = f"{offset:09d}"
                add(tar, f"{key}.json", json.dumps(records[offset]).encode())
                for name, values in arrays.items():
                    buffer = io.BytesIO()
                    np.save(buffer, np.asarray(values[rows[offset : offset + 1]])[0])
                    add(tar, f"{key}.{name}.npy", buffer.getvalue())
    return names
