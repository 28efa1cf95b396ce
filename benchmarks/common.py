"""Machine description and the results file shared by the benchmarks."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
_target = RESULTS / "latest.json"  # where :func:`record` writes; :func:`options` may move it
_demo_root: Path | None = None  # --demo-root: already generated demo sets to reuse


def demo_root(tmp: Path, dataset: str) -> Path:
    """Where ``dataset`` (``demo`` / ``demo-video``) lives: under ``--demo-root`` when
    given, else under ``tmp`` (generated there on first use)."""
    return (_demo_root or tmp) / dataset


def options(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` with ``--dry-run`` and ``--out`` added.

    ``--dry-run``: the script's own tiny sizes (the test suite runs every script so, so
    none can rot); its numbers mean nothing and go to ``results/dry-run.json`` unless
    ``--out`` says where, never to ``latest.json``. ``--demo-root``: see :func:`demo_root`."""
    global _target, _demo_root
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes (for the tests)")
    parser.add_argument("--out", type=Path, default=None, help="results file (JSON)")
    parser.add_argument(
        "--demo-root", type=Path, default=None, help="generated demo/, demo-video/ to reuse"
    )
    args = parser.parse_args(argv)
    _demo_root = args.demo_root
    _target = args.out or RESULTS / ("dry-run.json" if args.dry_run else "latest.json")
    return args


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
    """Merge ``values`` into the results file (``results/latest.json``) under ``section``."""
    path = _target
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data["machine"] = machine()
    data.setdefault(section, {}).update(values)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
