"""`qfeat cache verify`: re-read every done shard and report (or remove) the bad ones.

Bad means damaged (sizes, checksums, schema, row counts, HDF5 arrays) or stale: a media
file of the shard changed size or mtime since it was written (the next `qfeat features`
run would recompute it anyway; the item paths come from the dataset's items.parquet)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from qfeat.cache.fingerprint import media_hash
from qfeat.cache.integrity import manifest_damage
from qfeat.cache.layout import ITEMS, MANIFEST, SHARD_RE, shard_name
from qfeat.cache.plan import read_marker, shard_problem
from qfeat.cache.reader import Stage
from qfeat.cache.writer import REQUIRED_COLUMNS

MANIFEST_INDEX = -1  # a BadShard about the stage folder's manifest, not one shard


@dataclass(frozen=True)
class BadShard:
    stage_dir: Path
    index: int
    reason: str

    @property
    def path(self) -> Path:
        if self.index == MANIFEST_INDEX:
            return self.stage_dir / MANIFEST
        return self.stage_dir / shard_name(self.index, "parquet")

    @property
    def repaired(self) -> str:
        """What :func:`repair` does about it, in words."""
        if self.index == MANIFEST_INDEX:
            return "removed manifest.json; the next `qfeat features` run writes it again"
        return f"removed shard {self.index:05d}; the next run recomputes it"


def check_shard(stage_dir: Path, index: int, paths: dict[str, str] | None = None) -> str | None:
    """None when shard ``index`` is intact, else the reason it is not. ``paths`` (item id
    to media path) also checks the media files against the marker's ``media_sha256``."""
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
        problem = _check_h5(stage_dir / shard_name(index, "h5"), arrays, table.num_rows)
        if problem:
            return problem
    return _check_media(table.column("item_id").to_pylist(), marker, paths or {})


def _check_media(item_ids: list[str], marker: dict, paths: dict[str, str]) -> str | None:
    recorded = marker.get("media_sha256")
    if not recorded or not item_ids or any(i not in paths for i in item_ids):
        return None  # written before media hashes, or items the table does not know
    if media_hash(paths[i] for i in item_ids) == recorded:
        return None
    changed = [i for i in item_ids if not Path(paths[i]).is_file()]
    what = f"missing: {', '.join(changed[:3])}" if changed else "size or mtime changed"
    return (
        f"stale: a media file changed since the shard was written ({what}); "
        "the next `qfeat features` run recomputes it"
    )


def item_paths(stage_dir: Path) -> dict[str, str]:
    """Item id -> media path from the items table of the stage's dataset ({} if none)."""
    table = stage_dir.parent.parent / ITEMS  # <cache>/<dataset>/<stage>/<fingerprint>
    if not table.is_file():
        return {}
    cols = pq.read_table(table, columns=["item_id", "path"]).to_pydict()
    return dict(zip(cols["item_id"], cols["path"], strict=True))


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
                if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
                    return f"{path.name}: array '{name}' holds NaN or inf values"
    except Exception as exc:  # noqa: BLE001 - any HDF5 failure means unreadable
        return f"{path.name} is unreadable: {exc}"
    return None


def _indices(stage: Stage, kind: str) -> set[int]:
    found = (SHARD_RE.match(p.name) for p in stage.dir.glob(f"shard-*.{kind}"))
    return {int(m.group(1)) for m in found if m}


def verify_stage(stage: Stage) -> list[BadShard]:
    """The manifest (edited, or not describing its folder), every shard with a done
    marker (checked in full), and data files whose done marker is gone."""
    bad = []
    if problem := manifest_damage(stage.dir, stage.manifest):
        bad.append(BadShard(stage.dir, MANIFEST_INDEX, problem))
    paths = item_paths(stage.dir)
    marked = _indices(stage, "done.json")
    for index in sorted(marked):
        reason = check_shard(stage.dir, index, paths)
        if reason:
            bad.append(BadShard(stage.dir, index, reason))
    for index in sorted(_indices(stage, "parquet") - marked):
        reason = (
            "no done marker, but its data files are there (the marker was deleted, or a run "
            "was killed while writing the shard)"
        )
        bad.append(BadShard(stage.dir, index, reason))
    return sorted(bad, key=lambda b: b.index)


def repair(bad: BadShard) -> None:
    """Remove a bad shard's marker first, then its files, so the next run recomputes it
    (or a bad manifest, which the next run writes again)."""
    if bad.index == MANIFEST_INDEX:
        bad.path.unlink(missing_ok=True)
        return
    for kind in ("done.json", "parquet", "h5"):
        path = bad.stage_dir / shard_name(bad.index, kind)
        if path.exists():
            path.unlink()
