"""Dask clusters: an embedded one on this machine, or an existing one by address.

Embedded default: workers bound to 127.0.0.1, one per visible GPU (each pinned to its
GPU with CUDA_VISIBLE_DEVICES) or, on CPU, a few processes with the cores split
between them; no dashboard unless asked.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass

from qfeat.errors import DatasetError

ALLOWED_FAILURES = 2  # worker deaths one task may cause before it is reported as failed


@dataclass(frozen=True)
class Resources:
    device: str  # "cpu" or "cuda"
    workers: int
    threads: int  # torch threads per worker


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DatasetError("--device cuda but no CUDA GPU is visible; use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise DatasetError(f"--device must be auto, cpu or cuda, not {device!r}")
    return device


def plan_resources(device: str, workers: int | None) -> Resources:
    if device == "cuda":
        import torch

        n = workers or torch.cuda.device_count()
        return Resources("cuda", n, 2)
    cores = os.cpu_count() or 1
    n = workers or max(1, min(4, cores // 2))
    return Resources("cpu", n, max(1, cores // n))


@contextmanager
def connect(scheduler: str | None, resources: Resources, dashboard: bool = False):
    """Yield a ``distributed.Client`` to an existing scheduler or an embedded cluster."""
    import logging

    import dask
    from distributed import Client

    if not logging.getLogger().isEnabledFor(logging.INFO):
        # distributed logs every worker/client event at INFO; keep the progress bar clean
        for name in (
            "distributed",
            "distributed.scheduler",
            "distributed.nanny",
            "distributed.core",
        ):
            logging.getLogger(name).setLevel(logging.WARNING)
    # worker-saturation 1.0: a worker holds only the shard it is running. With the default
    # (1.1, i.e. two tasks on a one-thread worker) a worker killed by one bad shard also
    # charged a failure to the innocent shard queued behind it.
    settings = {
        "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
        "distributed.scheduler.worker-saturation": 1.0,
    }
    with dask.config.set(settings):
        if scheduler:
            try:
                client = Client(scheduler, timeout="10s")
            except OSError as exc:
                raise DatasetError(
                    f"cannot reach the Dask scheduler at {scheduler} ({exc}); is `dask scheduler` "
                    "running there, and is the address tcp://HOST:PORT?"
                ) from exc
            try:
                yield client
            finally:
                client.close()
            return
        cluster = _embedded(resources, dashboard)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()


def _embedded(resources: Resources, dashboard: bool):
    """A SpecCluster on loopback: nanny-managed worker processes, one thread each
    (:mod:`qfeat.pipeline.cluster_servers`).

    Without ``dashboard`` neither the scheduler nor the workers open an HTTP port (Dask
    serves its health and metrics routes on 8787 otherwise, which clashed between two
    runs on one machine); with it the dashboard is served on 127.0.0.1:8787 only.
    """
    from distributed import Scheduler, SpecCluster, Worker
    from distributed.worker_memory import parse_memory_limit

    from qfeat.pipeline.cluster_servers import NoHttpScheduler, NoHttpWorker, PatientNanny

    memory_limit = parse_memory_limit(
        "auto", 1, resources.workers, logger=logging.getLogger(__name__)
    )
    workers = {}
    for i in range(resources.workers):
        options: dict = {
            "nthreads": 1,
            "host": "127.0.0.1",
            "memory_limit": memory_limit,
            "silence_logs": 40,
            "worker_class": Worker if dashboard else NoHttpWorker,
        }
        if resources.device == "cuda":
            options["env"] = {"CUDA_VISIBLE_DEVICES": str(i)}
        workers[f"{resources.device}-{i}"] = {"cls": PatientNanny, "options": options}
    scheduler = {
        "cls": Scheduler if dashboard else NoHttpScheduler,
        "options": {
            "host": "127.0.0.1",
            "dashboard": dashboard,
            "dashboard_address": "127.0.0.1:8787" if dashboard else None,
        },
    }
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=40)
