"""Dask clusters: an embedded one on this machine, or an existing one by address.

Embedded default: workers bound to 127.0.0.1, one per visible GPU (each pinned to its
GPU with CUDA_VISIBLE_DEVICES) or, on CPU, a few processes with the cores split
between them; no dashboard unless asked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from qfeat.errors import DatasetError, OptionError

ALLOWED_FAILURES = 2  # worker deaths one task may cause before it is reported as failed
# Dask's housekeeping that only a dashboard reads: the workers' statistical profiler (a
# 10 ms stack sampler in every worker, the dashboard's Profile page), the 500 ms system
# monitor, and the 20 ms event-loop tick (it only times blocked loops, warned about after
# 3 s). With Dask's defaults an idle 2-worker cluster used ~20 % of a core, ~5 % with
# these (benchmarks/RESULTS.md); `--dashboard` keeps the defaults.
QUIET_HOUSEKEEPING = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.tick.interval": "1s",
}


@dataclass(frozen=True)
class Resources:
    device: str  # "cpu" or "cuda"
    workers: int
    threads: int  # torch threads per worker


# what a GPU torch can use leaves on Linux: the NVIDIA driver, WSL2's GPU, ROCm's device
GPU_TRACES = ("/proc/driver/nvidia", "/dev/nvidia*", "/dev/dxg", "/dev/kfd")


def no_gpu_possible() -> bool:
    """True on Linux with no trace of a GPU driver: ``auto`` is then ``cpu`` without
    importing torch (seconds, in a driver process whose workers do the computing)."""
    import glob
    import sys

    return sys.platform == "linux" and not any(glob.glob(p) for p in GPU_TRACES)


def resolve_device(device: str) -> str:
    if device == "auto" and no_gpu_possible():
        return "cpu"
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
    from qfeat.pipeline.threads import available_cpus, thread_count

    cores = available_cpus()  # affinity and cgroup quota, not every core of the machine
    n = workers or max(1, min(4, cores // 2))
    return Resources("cpu", n, thread_count(max(1, cores // n)))


def probe_scheduler(address: str, timeout: float = 5.0) -> None:
    """Refuse within seconds a ``tcp://`` address where no Dask scheduler answers.

    A Dask scheduler sends its handshake as soon as a connection is accepted (8 bytes of
    message length, then the frame count, ...). A closed port fails at once; a server that
    says nothing (e.g. a plain HTTP server, which waits for a request) or sends something
    else is not a scheduler, where ``distributed.Client`` could wait forever in the
    handshake. Other schemes (``tls://``, ``ucx://``) are left to ``distributed``."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme != "tcp":
        return
    try:
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        host, port = None, None
    if not host or not port:
        raise OptionError(f"--scheduler {address}: expected tcp://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            head = sock.recv(16)
    except TimeoutError as exc:
        raise DatasetError(
            f"{address} accepted the connection but said nothing within {timeout:g} s: it is "
            "not a Dask scheduler (a Dask scheduler greets at once); check --scheduler (the "
            "address `dask scheduler` prints, e.g. tcp://HOST:8786)"
        ) from exc
    except OSError as exc:
        raise DatasetError(
            f"cannot reach the Dask scheduler at {address} ({exc}); is `dask scheduler` "
            "running there, and is the address tcp://HOST:PORT?"
        ) from exc
    length = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if not 0 < length < 1 << 24:
        raise DatasetError(
            f"{address} answered, but not as a Dask scheduler (it sent {head[:16]!r}); check "
            "--scheduler (the address `dask scheduler` prints, e.g. tcp://HOST:8786)"
        )


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
        # a lost scheduler is logged as reconnection tracebacks; the shards it took say
        # it in one line each (runner.failure_reason); `qfeat -v` shows them
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
    # worker-saturation 1.0: a worker holds only the shard it is running. With the default
    # (1.1, i.e. two tasks on a one-thread worker) a worker killed by one bad shard also
    # charged a failure to the innocent shard queued behind it.
    settings = {
        "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
        "distributed.scheduler.worker-saturation": 1.0,
        **({} if dashboard else QUIET_HOUSEKEEPING),
    }
    with dask.config.set(settings):
        if scheduler:
            probe_scheduler(scheduler)
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
                _close_quietly(client)
            return
        with _environment_restored():
            with _children_ignore_sigint():
                cluster = _embedded(resources, dashboard)
            try:
                with Client(cluster) as client:
                    yield client
            finally:
                cluster.close()


def _close_quietly(client) -> None:
    """Close ``client``; when its scheduler is gone, distributed logs the cancelled
    reconnection as a traceback, which says nothing the failed shards do not."""
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        client.close()
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextmanager
def _environment_restored() -> Iterator[None]:
    """Dask's nanny sets ``distributed.nanny.pre-spawn-environ`` (OMP_NUM_THREADS=1 and
    friends) and PYTHONHASHSEED in the *driver's* environment before it spawns a worker,
    and leaves them there: a Python process that ran a feature job in-process (a notebook,
    a test session) would start every later subprocess single-threaded. Workers get them
    as before; the driver gets its own values back when the embedded cluster closes."""
    import dask

    keys = {*dask.config.get("distributed.nanny.pre-spawn-environ"), "PYTHONHASHSEED",
            "__DASK_PARENT_PID"}  # fmt: skip
    before = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Ctrl-C reaches the terminal's whole process group. The driver handles it (the
    cluster is closed on the way out), so the worker processes started here ignore it
    (the disposition is inherited) instead of each printing a KeyboardInterrupt
    traceback."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _embedded(resources: Resources, dashboard: bool):
    """A SpecCluster on loopback: nanny-managed worker processes, one thread each
    (:mod:`qfeat.pipeline.cluster_servers`).

    Without ``dashboard`` neither the scheduler nor the workers open an HTTP port (Dask
    serves its health and metrics routes on 8787 otherwise, which clashed between two
    runs on one machine); with it the dashboard is served on 127.0.0.1:8787 only.
    """
    from distributed import Scheduler, SpecCluster
    from distributed.worker_memory import parse_memory_limit

    from qfeat.pipeline.cluster_servers import (
        NoHttpScheduler,
        NoHttpWorker,
        PatientNanny,
        QuietWorker,
    )

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
            "worker_class": QuietWorker if dashboard else NoHttpWorker,
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
