"""Reading the cache: find a stage's fingerprint, load its table and arrays, join stages.

Tables are read whole per shard file (pyarrow), arrays with whole-dataset HDF5 reads into
one preallocated array (never per-row reads), or memory-mapped when they do not fit RAM.
Only shards with a done marker are read; a stage is *complete* when all the shards its
manifest plans are done.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from qfeat.cache.integrity import CacheDamaged, damaged, manifest_damage, shard_damage
from qfeat.cache.layout import LATEST, MANIFEST, SHARD_RE, shard_name, stage_root, write_json_atomic
from qfeat.cache.plan import read_marker
from qfeat.errors import DatasetError


class CacheMissing(DatasetError):
    """The requested stage is not (completely) in the cache; the message names the fix."""


__all__ = ["CacheDamaged", "CacheMissing", "Stage", "join_stages", "list_stages", "open_stage"]


@dataclass
class Stage:
    """One ``<dataset>/<stage>/<fingerprint>`` folder."""

    dir: Path
    manifest: dict[str, Any] = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return self.dir.name

    @property
    def name(self) -> str:
        return self.manifest["stage"]

    @cached_property
    def markers(self) -> dict[int, dict[str, Any]]:
        """Done markers of the shards whose listed files all exist, by shard index."""
        out = {}
        for path in sorted(self.dir.glob("shard-*.done.json")):
            m = SHARD_RE.match(path.name)
            marker = read_marker(self.dir, int(m.group(1))) if m else None
            if marker and all((self.dir / n).is_file() for n in marker.get("files", {})):
                out[int(m.group(1))] = marker
        return out

    @cached_property
    def damage(self) -> list[str]:
        """What is damaged in this folder: an edited manifest, edited done markers, data
        files that differ from their markers (see :mod:`qfeat.cache.integrity`)."""
        problems = []
        if problem := manifest_damage(self.dir, self.manifest):
            problems.append(problem)
        for index, marker in self.markers.items():
            if problem := shard_damage(self.dir, index, marker):
                problems.append(problem)
        return problems

    def require_intact(self, shards: Iterable[int] | None = None) -> None:
        """Raise :class:`CacheDamaged` (naming each problem and the fix) unless intact;
        ``shards``: check the manifest and only these shards (a reader of a few)."""
        if shards is None:
            problems = self.damage
        else:
            problems = [p for p in [manifest_damage(self.dir, self.manifest)] if p]
            for index in shards:
                if problem := shard_damage(self.dir, index, self.markers[index]):
                    problems.append(problem)
        if problems:
            raise damaged(self.dir, "; ".join(problems[:5]))

    @property
    def shards_total(self) -> int:
        return int(self.manifest.get("shards_total", 0))

    @property
    def complete(self) -> bool:
        return len(self.markers) == self.shards_total and all(
            i in self.markers for i in range(self.shards_total)
        )

    def table(self, columns: list[str] | None = None) -> pd.DataFrame:
        """All done shards' rows, in shard order (the order of the arrays)."""
        return self.shard_rows(self.markers, columns)

    def shard_rows(self, shards: Iterable[int], columns: list[str] | None = None) -> pd.DataFrame:
        """The rows of done shards ``shards`` only, in shard order: what a downstream
        shard reads, so reading upstream rows costs its own items, not the whole stage."""
        shards = sorted(set(shards))
        missing = [i for i in shards if i not in self.markers]
        if missing:
            raise CacheMissing(f"shard(s) {missing[:5]} of {self.dir} are not done")
        self.require_intact(None if len(shards) == len(self.markers) else shards)
        tables = [
            pq.read_table(self.dir / shard_name(i, "parquet"), columns=columns) for i in shards
        ]
        if not tables:
            return pd.DataFrame(columns=columns or ["item_id", "status", "error"])
        return pa.concat_tables(tables, promote_options="default").to_pandas()

    def item_shards(self) -> dict[str, int]:
        """``item_id -> shard index`` over the done shards (their ``item_id`` column only:
        one cheap pass, so a planner can send each task just the shards it needs)."""
        index: dict[str, int] = {}
        for i in sorted(self.markers):
            ids = pq.read_table(self.dir / shard_name(i, "parquet"), columns=["item_id"])
            index.update(dict.fromkeys(ids.column("item_id").to_pylist(), i))
        return index

    def errors(self) -> pd.DataFrame:
        t = self.table(["item_id", "status", "error"])
        return t[t["status"] != "ok"].reset_index(drop=True)

    def array_names(self) -> list[str]:
        names: set[str] = set()
        for marker in self.markers.values():
            names.update(marker.get("arrays", {}))
        return sorted(names)

    def array(self, name: str, mmap: bool = False) -> np.ndarray | MappedRows:
        """Array ``name`` of all done shards, rows aligned with :meth:`table`.

        ``mmap=True`` maps the HDF5 data instead of reading it (for arrays larger than
        RAM): a numpy memmap for one shard, a :class:`MappedRows` for several.
        """
        import h5py

        self.require_intact()
        shards = sorted(self.markers)
        specs = [self.markers[i].get("arrays", {}).get(name) for i in shards]
        if not shards or any(s is None for s in specs):
            raise CacheMissing(
                f"array '{name}' is not in every shard of {self.dir} (has: {self.array_names()})"
            )
        if mmap:
            parts = [_memmap(self.dir / shard_name(i, "h5"), name) for i in shards]
            return MappedRows(parts, self.dir, name)
        rows = sum(s["shape"][0] for s in specs)
        out = np.empty((rows, *specs[0]["shape"][1:]), dtype=np.dtype(specs[0]["dtype"]))
        start = 0
        for i, spec in zip(shards, specs, strict=True):
            n = spec["shape"][0]
            path = self.dir / shard_name(i, "h5")
            if n and spec.get("offset") is not None:
                # Contiguous dataset at a known offset (recorded by the writer, guarded by
                # the checksum): read its bytes straight into the output, like np.load.
                with open(path, "rb") as f:
                    f.seek(spec["offset"])
                    view = memoryview(out[start : start + n]).cast("B")
                    if f.readinto(view) != view.nbytes:
                        raise CacheMissing(
                            f"{path} is shorter than its marker says; run `qfeat cache verify`"
                        )
            elif n:
                with h5py.File(path, "r") as f:
                    f[name].read_direct(out, dest_sel=np.s_[start : start + n])
            start += n
        return finite(out, self.dir, name)


def finite(values: np.ndarray, where: Path, name: str) -> np.ndarray:
    """``values``, unless a float array holds NaN or inf: damage (bytes overwritten) or a
    model output that overflowed fp16; either way nothing should train on it."""
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        raise damaged(where, f"array '{name}' holds NaN or inf values")
    return values


def _memmap(path: Path, name: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        ds = f[name]
        offset = ds.id.get_offset()
        if offset is None or ds.chunks is not None or ds.compression is not None:
            return ds[()]  # empty or not contiguous: fall back to a read
        shape, dtype = ds.shape, ds.dtype
    return np.memmap(path, mode="r", dtype=dtype, shape=shape, offset=offset)


class MappedRows:
    """Row-indexable view over memory-mapped shard arrays (no copy until indexed); rows
    read with NaN or inf raise :class:`CacheDamaged`."""

    def __init__(self, parts: list[np.ndarray], where: Path = Path("."), name: str = "array"):
        self.parts = parts
        self.where, self.name = where, name
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.offsets[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = np.arange(self.shape[0])[index]
        scalar = np.ndim(rows) == 0
        rows = np.atleast_1d(rows)
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        for s in np.unique(shard):
            sel = shard == s
            out[sel] = self.parts[s][rows[sel] - self.offsets[s]]
        finite(out, self.where, self.name)
        return out[0] if scalar else out


def open_folder(folder: Path | str) -> Stage:
    """The stage in fingerprint folder ``folder`` (its manifest read, nothing else)."""
    folder = Path(folder)
    return Stage(folder, json.loads((folder / MANIFEST).read_text()))


def list_stages(cache_dir: Path, dataset: str, stage: str) -> list[Stage]:
    """Every fingerprint folder of a stage with a readable manifest, oldest first."""
    root = stage_root(cache_dir, dataset, stage)
    stages = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        stages.append(Stage(folder, manifest))
    return sorted(stages, key=lambda s: (s.manifest.get("created", ""), s.fingerprint))


def mark_latest(cache_dir: Path, dataset: str, stage: str, fingerprint: str) -> None:
    """Record ``fingerprint`` as the one the last ``qfeat features`` run completed, so
    readers (the trainers) use the configuration that was asked for last, even when it
    was computed before another one."""
    write_json_atomic(stage_root(cache_dir, dataset, stage) / LATEST, {"fingerprint": fingerprint})


def latest_fingerprint(cache_dir: Path, dataset: str, stage: str) -> str | None:
    """The fingerprint :func:`mark_latest` recorded, or None."""
    try:
        data = json.loads((stage_root(cache_dir, dataset, stage) / LATEST).read_text())
    except (OSError, ValueError):
        return None
    value = data.get("fingerprint") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def default_stage(stages: list[Stage], latest: str | None) -> Stage | None:
    """The fingerprint readers use: the one the last run completed when it is still
    complete, else the newest complete one (``stages`` oldest first)."""
    complete = [s for s in stages if s.complete]
    chosen = [s for s in complete if s.fingerprint == latest]
    return (chosen or complete or [None])[-1]


def open_stage(cache_dir: Path, dataset: str, stage: str, fingerprint: str | None = None) -> Stage:
    """The fingerprint of ``dataset``/``stage`` the last ``qfeat features`` run completed
    (when still complete; else the newest complete one), or the one named."""
    stages = list_stages(cache_dir, dataset, stage)
    if fingerprint is not None:
        for s in stages:
            if s.fingerprint == fingerprint:
                return s
        raise CacheMissing(
            f"no fingerprint {fingerprint} for {dataset}/{stage} in {cache_dir} "
            f"(have: {', '.join(s.fingerprint for s in stages) or 'none'}; see `qfeat cache ls`)"
        )
    chosen = default_stage(stages, latest_fingerprint(cache_dir, dataset, stage))
    if chosen is None:
        state = "is incomplete" if stages else "is not in the cache"
        raise CacheMissing(
            f"stage '{stage}' of dataset '{dataset}' {state} ({cache_dir}); compute it with "
            f"`qfeat features {dataset} --stages {stage}` (or `qfeat stage {stage} {dataset}`)"
        )
    return chosen


def join_stages(stages: list[Stage]) -> pd.DataFrame:
    """Inner join on ``item_id``; columns become ``<stage>.<column>``, and ``<stage>.row``
    is the row of each item in that stage's arrays."""
    joined: pd.DataFrame | None = None
    for stage in stages:
        t = stage.table()
        t = t.rename(columns={c: f"{stage.name}.{c}" for c in t.columns if c != "item_id"})
        t[f"{stage.name}.row"] = np.arange(len(t))
        joined = t if joined is None else joined.merge(t, on="item_id", how="inner")
    return joined if joined is not None else pd.DataFrame(columns=["item_id"])
