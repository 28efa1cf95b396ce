"""How many embedded-cluster workers this machine's memory holds.

Every worker process loads its own copy of a stage's models. Dask gives each of ``n``
workers ``memory / n`` and kills (then restarts) a worker that goes over it, so asking
for more workers than memory holds ends, after many restarts, in ``KilledWorker`` and
pages of tracebacks. The embedded cluster's worker count is capped here instead, in one
line, before any worker starts.

A worker's need is estimated as :data:`WORKER_BASE_BYTES` (its measured peak RSS with the
tiny preset's models, benchmarks/RESULTS.md) plus the size of every weights file the
run's stages name (a model takes at least its file's size in memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORKER_BASE_BYTES = 1536 << 20  # 1.5 GiB: peak worker RSS measured 1.3-1.6 GB (tiny preset)


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or a cgroup / rlimit below
    it (the figure Dask divides among workers)."""
    import psutil
    from distributed.system import MEMORY_LIMIT

    return int(min(psutil.virtual_memory().total, MEMORY_LIMIT))


def _files(value: Any) -> list[Path]:
    if isinstance(value, dict):
        return [f for v in value.values() for f in _files(v)]
    if isinstance(value, str) and value and ("/" in value or "." in value):
        path = Path(value).expanduser()
        try:
            return [path] if path.is_file() else []
        except OSError:
            return []
    return []


def worker_need(config: dict[str, Any], stages: list[str]) -> int:
    """Estimated peak bytes of one worker running ``stages`` with ``config``."""
    files = {f.resolve() for name in stages for f in _files(config.get(name, {}))}
    return WORKER_BASE_BYTES + sum(f.stat().st_size for f in files)


def cap_workers(workers: int, need: int, memory: int | None = None) -> tuple[int, str | None]:
    """``(workers that fit, the line saying so or None)`` for ``workers`` asked for."""
    memory = machine_memory() if memory is None else memory
    fit = max(1, memory // max(1, need))
    if workers <= fit:
        return workers, None
    gib = 1 << 30
    return fit, (
        f"--workers {workers}: this machine's {memory / gib:.1f} GiB hold about {fit} "
        f"worker(s) of ~{need / gib:.1f} GiB each (every worker loads its own models); "
        f"running {fit}"
    )
