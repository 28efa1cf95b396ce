"""Machine description and the results file shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": gpu,
        "torch": torch.__version__,
        "date": datetime.now(UTC).date().isoformat(),
    }


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest wall time of ``repeats`` calls (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def record(section: str, values: dict[str, Any]) -> Path:
    """Merge ``values`` into ``results/latest.json`` under ``section``."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "latest.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data["machine"] = machine()
    data.setdefault(section, {}).update(values)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
