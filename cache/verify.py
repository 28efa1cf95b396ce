"""`qfeat cache verify`: re-read every done shard and report (or remove) the bad ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from cache.layout import shard_name
from cache.plan import read_marker, shard_problem
from cache.reader import Stage
from cache.writer import REQUIRED_COLUMNS


@dataclass(frozen=True)
class BadShard:
    stage_dir: Path
    index: int
    reason: str

    @property
    def path(self) -> Path:
        return self.stage_dir / shard_name(self.index, "parquet")


def check_shard(stage_dir: Path, index: int) -> str | None:
    """None when shard ``index`` is intact, else the reason it is not."""
    problem = shard_problem(stage_dir, index, checksums=True)
    if problem:
        return problem
    marker = read_marker(stage_dir, index) or {}
    parquet = stage_dir / shard_name(index, "parquet")
    try:
        table = pq.read_table(parquet)
    except Exception as exc:  # noqa: BLE001 - any pyarrow failure means unreadable
        return f"{parquet.name} is unreadable: {exc}"
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        return f"{parquet.name} lacks column(s) {', '.join(missing)}"
    if table.num_rows != marker.get("rows"):
        return f"{parquet.name} has {table.num_rows} rows, the marker says {marker.get('rows')}"
    arrays = marker.get("arrays", {})
    if arrays:
        return _check_h5(stage_dir / shard_name(index, "h5"), arrays, table.num_rows)
    return None


def _check_h5(path: Path, arrays: dict, rows: int) -> str | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            for name, spec in arrays.items():
                if name not in f:
                    return f"{path.name} lacks array '{name}'"
                data = f[name][()]
                if list(data.shape) != spec["shape"] or data.shape[:1] != (rows,):
                    want = spec["shape"]
                    return f"{path.name}: array '{name}' has shape {data.shape}, expected {want}"
    except Exception as exc:  # noqa: BLE001 - any HDF5 failure means unreadable
        return f"{path.name} is unreadable: {exc}"
    return None


def verify_stage(stage: Stage) -> list[BadShard]:
    """Every shard with a done marker, checked in full."""
    indices = sorted(
        int(p.name[6:11]) for p in stage.dir.glob("shard-*.done.json") if p.name[6:11].isdigit()
    )
    bad = []
    for index in indices:
        reason = check_shard(stage.dir, index)
        if reason:
            bad.append(BadShard(stage.dir, index, reason))
    return bad


def repair(bad: BadShard) -> None:
    """Remove a bad shard's marker first, then its files, so the next run recomputes it."""
    for kind in ("done.json", "parquet", "h5"):
        path = bad.stage_dir / shard_name(bad.index, kind)
        if path.exists():
            path.unlink()
