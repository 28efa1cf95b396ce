"""How many CPU threads qfeat may use: the CPUs this process can really run on.

``os.cpu_count()`` and torch's default count every core of the machine, also those a
container (cgroup CPU quota) or a job scheduler (CPU affinity, e.g. SLURM's
``--cpus-per-task``) does not give the process; sizing thread pools from them
oversubscribes the CPUs it has (a loaded 2-core machine slowed SCMA training ~100x).
``QFEAT_THREADS`` overrides every choice made here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

ENV = "QFEAT_THREADS"


def _cgroup_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs the cgroup CPU quota allows (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may run on: its affinity mask, capped by the cgroup quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_limit(cgroup_root)
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


def thread_count(preferred: int | None = None) -> int:
    """Threads for one process's torch/BLAS work: ``$QFEAT_THREADS`` when set, else
    ``preferred`` (a measured best for that work) capped by :func:`available_cpus`, else
    all available CPUs."""
    value = os.environ.get(ENV, "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            from qfeat.errors import OptionError

            raise OptionError(f"{ENV} must be a whole number >= 1, not {value!r}")
        return threads
    cpus = available_cpus()
    return min(preferred, cpus) if preferred else cpus
