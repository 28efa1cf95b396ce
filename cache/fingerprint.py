"""Stage fingerprints and manifests.

A fingerprint is the sha256 (first 16 hex digits) of the canonical JSON of everything
that affects a stage's output: stage name and version, the fully resolved stage config
(defaults included), the stage's output-affecting constants (its prompt text, size
limits), model identity, upstream fingerprints, the dataset adapter with its
options, the hash of the item list, and the shard size (it decides which items share a
shard file). Library versions and the creation time are recorded in the manifest but
left out of the hash, so a routine upgrade does not throw the cache away; bump the
stage version when a library change is known to alter outputs.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

FINGERPRINTED = (
    "stage",
    "stage_version",
    "config",
    "model",
    "upstream",
    "dataset",
    "items_sha256",
    "shard_size",
)
# hashed when present: manifests written before qfeat recorded them still verify
FINGERPRINTED_SINCE = ("constants",)
LIBRARIES = (
    "torch",
    "torchvision",
    "numpy",
    "pyarrow",
    "h5py",
    "segment-anything",
    "open_clip_torch",
    "timm",
    "transformers",
    "decord",
    "av",
)


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def items_hash(item_ids: Iterable[str]) -> str:
    """Order-sensitive hash of the item list (shards are planned from this order)."""
    h = hashlib.sha256()
    for item_id in item_ids:
        h.update(item_id.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def media_hash(paths: Iterable[str | Path]) -> str:
    """Hash of the size and mtime_ns of each media file, in order ("missing" for a file
    that is not there): recorded in each shard's done marker, so a file edited or
    replaced in place makes its shard run again (not the whole dataset)."""
    h = hashlib.sha256()
    for path in paths:
        try:
            st = Path(path).stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(b"missing\n")
    return h.hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return out


def fingerprint(manifest: dict[str, Any]) -> str:
    missing = [k for k in FINGERPRINTED if k not in manifest]
    if missing:
        raise ValueError(f"manifest lacks fingerprinted field(s): {', '.join(missing)}")
    hashed = {k: manifest[k] for k in FINGERPRINTED}
    hashed.update({k: manifest[k] for k in FINGERPRINTED_SINCE if k in manifest})
    return sha256_text(canonical_json(hashed))[:16]


def model_identity(
    name: str,
    weights: str | Path | None = None,
    revision: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What identifies a model's weights in a manifest.

    A local weights file (or every file of a local model folder) is hashed with sha256;
    a hub model is identified by its revision; a seeded random model (the ``tiny``
    preset) by ``extra`` such as its seed and architecture.
    """
    out: dict[str, Any] = {"name": name, **extra}
    if weights:
        from qfeat.cache.weights_hash import weights_sha256, weights_sha256s  # remembered

        path = Path(weights)
        if path.is_dir():
            files = [p for p in sorted(path.rglob("*")) if p.is_file()]
            digests = weights_sha256s(files)
            out["sha256"] = {
                p.relative_to(path).as_posix(): d for p, d in zip(files, digests, strict=True)
            }
        else:
            out["sha256"] = weights_sha256(path)
    if revision:
        out["revision"] = revision
    return out


def build_manifest(
    *,
    stage: str,
    stage_version: int,
    config: dict[str, Any],
    model: dict[str, Any],
    upstream: dict[str, str],
    dataset: dict[str, Any],
    item_ids: list[str],
    shard_size: int,
    arrays: list[str] | None = None,
    preset: str | None = None,
    sets: list[str] | None = None,
    constants: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a stage run, with its ``fingerprint`` filled in.

    ``model`` identifies the weights: ``{"name": ..., "sha256": ...}`` for a local file
    or ``{"name": ..., "revision": ...}`` for a hub model. ``dataset`` holds the adapter
    name, its options and the storage name. ``arrays`` names the HDF5 datasets.
    ``constants``: the stage's output-affecting constants (``Stage.constants()``).
    """
    manifest: dict[str, Any] = {
        "stage": stage,
        "stage_version": stage_version,
        "config": config,
        "model": model,
        "upstream": dict(sorted(upstream.items())),
        "dataset": dataset,
        "items_sha256": items_hash(item_ids),
        "shard_size": shard_size,
        "constants": constants or {},
        "items": len(item_ids),
        "shards_total": (len(item_ids) + shard_size - 1) // shard_size if item_ids else 0,
        "arrays": sorted(arrays or []),
        "libraries": library_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        # bookkeeping (not hashed: the resolved config is): the preset the run started
        # from, so trainers can default to the hyper-parameters of the same preset
        "preset": preset,
        # and the `--set` values of this stage's own section (and top-level ones such as
        # seed): with the preset, what a repair command repeats (qfeat.cache.basis)
        "sets": sorted(sets or []),
    }
    manifest["fingerprint"] = fingerprint(manifest)
    return manifest
