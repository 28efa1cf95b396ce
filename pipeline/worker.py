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
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd

from qfeat.cache.fingerprint import media_hash
from qfeat.cache.reader import open_folder
from qfeat.cache.writer import ShardWriter
from qfeat.pipeline.stages import get_stage

_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()
log = logging.getLogger(__name__)
# Fault injection for the fault-tolerance tests (never set in normal use):
CRASH_ENV = "QFEAT_TEST_CRASH_ITEM"  # a shard holding this item id kills its worker process
DELAY_ENV = "QFEAT_TEST_SHARD_DELAY"  # seconds each shard sleeps, to kill things mid-run


def _stage_instance(name: str, cfg: dict, seed: int, device: str, model: dict | None = None):
    """The stage built once per worker process for these settings and weights: ``model``
    is the manifest's model identity (a file's sha256), so a weights file replaced under
    the same path is loaded again by a long-lived worker (``--scheduler``)."""
    key = json.dumps([name, cfg, seed, device, model], sort_keys=True)
    with _LOCK:
        if key not in _MODELS:
            stage = get_stage(name)(cfg, seed=seed, device=device)
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


def _upstream(
    upstream: dict[str, tuple[str, list[int]]], item_ids: list[str]
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Per upstream stage: ``item_id -> row`` and its config. ``upstream`` maps a stage
    to its folder and the shards that hold this shard's items (the driver's index), so
    a shard reads its own items' rows, not the whole upstream stage."""
    rows, configs = {}, {}
    wanted = set(item_ids)
    for name, (folder, shards) in upstream.items():
        stage = open_folder(folder)
        table: pd.DataFrame = stage.shard_rows(shards)
        table = table[table["item_id"].isin(wanted)]
        rows[name] = {r["item_id"]: r for r in table.to_dict(orient="records")}
        configs[name] = stage.manifest["config"]
    return rows, configs


def run_shard(
    stage_name: str,
    cfg: dict,
    seed: int,
    device: str,
    threads: int,
    stage_dir: str,
    index: int,
    items: list[dict[str, Any]],
    upstream: dict[str, tuple[str, list[int]]],
    model: dict | None = None,
) -> dict[str, Any]:
    """Compute and write shard ``index``; returns ``{shard, rows, ok, failed, seconds}``."""
    crash = os.environ.get(CRASH_ENV)
    if crash and any(i["item_id"] == crash for i in items):
        os._exit(3)  # simulate a hard crash (segfault, OOM kill) of the worker
    if os.environ.get(DELAY_ENV):
        time.sleep(float(os.environ[DELAY_ENV]))
    # torch's threads, set before the model loads; a stage that does not use torch
    # (frames) never imports it, which spares a new worker seconds of import
    if threads and get_stage(stage_name).uses_torch:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    media = media_hash(i["path"] for i in items)  # before reading: what was read
    stage = _stage_instance(stage_name, cfg, seed, device, model)
    t_load = time.perf_counter()
    rows, stage.upstream_config = _upstream(upstream, [i["item_id"] for i in items])
    table, arrays = stage.process_shard(items, rows)
    t_compute = time.perf_counter()
    record = ShardWriter(Path(stage_dir), index).write(
        table,
        arrays,
        timings={"load_s": round(t_load - t0, 4), "compute_s": round(t_compute - t_load, 4)},
        media_sha256=media,
    )
    return {
        "shard": index,
        "rows": record["rows"],
        "ok": record["ok"],
        "failed": record["failed"],
        "seconds": round(time.perf_counter() - t0, 4),
    }
