"""The Dask task: compute one shard of one stage and write it to the cache.

Runs on a worker. The stage's model is built once per worker process (keyed by stage,
config, seed, device and weights) and reused for every later shard of the stage; when
the stage ends the runner has every worker drop it (:func:`release_models`), so the
next stage's model never shares the memory with it. The task returns small statistics
only; the data goes to the cache.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from qfeat.cache.fingerprint import media_hash
from qfeat.cache.reader import open_folder
from qfeat.cache.writer import ShardWriter
from qfeat.pipeline import failures
from qfeat.pipeline.stages.base import Stage, Upstream

_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardTask:
    """One shard of one stage, as the driver sends it to a worker (:func:`run_shard`).

    ``stage`` is the class itself (pickled by reference, so a worker needs no registry
    lookup); ``settings`` its resolved settings; ``model`` the manifest's model identity;
    ``upstream`` maps each upstream stage to its cache folder and the shards of it that
    hold this shard's items (the driver's index)."""

    stage: type[Stage]
    settings: dict[str, Any]
    seed: int
    device: str
    threads: int
    folder: str
    index: int
    items: list[dict[str, Any]]
    upstream: dict[str, tuple[str, list[int]]]
    model: dict[str, Any] | None = None


def _stage_instance(task: ShardTask) -> Stage:
    """The stage built once per worker process for these settings and weights: ``model``
    is the manifest's model identity (a file's sha256), so a weights file replaced under
    the same path is loaded again by a long-lived worker (``--scheduler``)."""
    cls = task.stage
    key = json.dumps(
        [f"{cls.__module__}.{cls.__qualname__}", task.settings, task.seed, task.device,
         task.model], sort_keys=True,
    )  # fmt: skip
    with _LOCK:
        if key not in _MODELS:
            stage = cls(task.settings, seed=task.seed, device=task.device)
            stage.load()
            _MODELS[key] = stage
        return _MODELS[key]


def release_models(stage_name: str) -> int:
    """Drop this worker's models of ``stage_name`` and give their memory back (CUDA's
    cached blocks too); returns how many were dropped. A run's stages go one after
    another: at the paper preset SAM ViT-H (2.6 GB fp32) would otherwise stay on the GPU
    under Qwen2.5-VL-7B (16.6 GB bf16). Runs on the worker's event loop (``client.run``),
    so it takes no lock that a model build in a task thread may hold for minutes; a shard
    of another run still using a dropped stage finishes with it."""
    dropped = [k for k, stage in list(_MODELS.items()) if stage.name == stage_name]
    for key in dropped:
        _MODELS.pop(key, None)
    if dropped:
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    return len(dropped)


def release_on_workers(client, stage_name: str) -> None:
    """Every worker drops ``stage_name``'s models (the stage has ended). A worker that
    is gone, or a scheduler that went away, took its models with it."""
    if client.status != "running":  # lost its scheduler: the run ends with that message
        return
    try:
        client.run(release_models, stage_name)
    except Exception as error:  # noqa: BLE001 - nothing left to free there
        log.debug("releasing %s models: %s", stage_name, error)


def read_upstream(upstream: dict[str, tuple[str, list[int]]], item_ids: list[str]) -> Upstream:
    """This shard's items' rows of each upstream stage, and the settings of the upstream
    cache folders (their manifests): a shard reads its own items' rows, not the whole
    upstream stage."""
    rows, settings = {}, {}
    wanted = set(item_ids)
    for name, (folder, shards) in upstream.items():
        stage = open_folder(folder)
        table: pd.DataFrame = stage.shard_rows(shards)
        table = table[table["item_id"].isin(wanted)]
        rows[name] = {r["item_id"]: r for r in table.to_dict(orient="records")}
        settings[name] = stage.manifest["config"]
    return Upstream(rows, settings)


def run_shard(*, task: ShardTask) -> dict[str, Any]:
    """Compute and write shard ``task.index``; returns ``{shard, rows, ok, failed,
    seconds}``, or ``{shard, error}`` for a failure that would repeat (the traceback goes
    to the stage's log, :mod:`qfeat.pipeline.failures`); other failures raise ShardError
    (one line) for Dask to retry."""
    # torch's threads, set before the model loads; a stage that does not use torch
    # (frames) never imports it, which spares a new worker seconds of import
    if task.threads and task.stage.uses_torch:
        import torch

        torch.set_num_threads(task.threads)
    t0 = time.perf_counter()
    items = task.items
    media = media_hash(i["path"] for i in items)  # before reading: what was read
    loading = True
    try:
        stage = _stage_instance(task)
        loading = False
        t_load = time.perf_counter()
        upstream = read_upstream(task.upstream, [i["item_id"] for i in items])
        table, arrays = stage.process_shard(items, upstream)
        t_compute = time.perf_counter()
        record = ShardWriter(Path(task.folder), task.index).write(
            table,
            arrays,
            timings={"load_s": round(t_load - t0, 4), "compute_s": round(t_compute - t_load, 4)},
            media_sha256=media,
        )
    except Exception as exc:  # noqa: BLE001 - one line for the driver, the traceback logged
        what = f"loading the {task.stage.name} model" if loading else "computing"
        reason = failures.record(task.folder, task.index, exc, what)
        if failures.permanent(exc, loading):  # returned: Dask neither retries nor logs it
            return {"shard": task.index, "error": reason}
        raise failures.ShardError(reason) from None
    return {
        "shard": task.index,
        "rows": record["rows"],
        "ok": record["ok"],
        "failed": record["failed"],
        "seconds": round(time.perf_counter() - t0, 4),
    }
