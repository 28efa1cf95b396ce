"""Shared by the runner tests: the demo-video features command and what they watch."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

from tests import faults

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FRAMES = ("--stages", "frames")  # fault tests check the frames stage only


def features_args(root: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "features", "demo-video", "--root", str(root), "--cache-dir", str(cache),
        "--limit", "24", "--shard-size", "4", "--workers", "2", *extra,
    ]  # fmt: skip


def fault_env(
    *,
    crash: str | None = None,
    delay: float | None = None,
    load_error: str | None = None,
    shard_error: str | None = None,
) -> dict[str, str]:
    """Environment variables that make the Dask workers a process starts (a driver's
    embedded cluster, or `dask worker`) load :mod:`tests.faults` and inject these faults:
    ``crash``: the item id whose shard kills its worker; ``delay``: seconds per shard."""
    env = {"DASK_DISTRIBUTED__WORKER__PRELOAD": faults.PRELOAD, "PYTHONPATH": str(REPO)}
    if crash is not None:
        env[faults.CRASH] = crash
    if delay is not None:
        env[faults.DELAY] = str(delay)
    if load_error is not None:
        env[faults.LOAD_ERROR] = load_error
    if shard_error is not None:
        env[faults.SHARD_ERROR] = shard_error
    return env


@contextlib.contextmanager
def faults_here(monkeypatch, **kinds):
    """:func:`fault_env` for the embedded cluster of an in-process run (its workers get
    this process's Dask configuration, read before the variables were set)."""
    import dask
    import distributed  # noqa: F401 - its defaults first: set() below must not shadow them

    for key, value in fault_env(**kinds).items():
        monkeypatch.setenv(key, value)
    with dask.config.set({"distributed.worker.preload": [faults.PRELOAD]}):
        yield


def markers(folder: Path) -> dict[str, float]:
    return {
        p.name: json.loads(p.read_text())["written"] for p in sorted(folder.glob("*.done.json"))
    }


def wait_for(predicate, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def done_count(cache: Path) -> int:
    return len(list((cache / "demo-video" / "frames").glob("*/shard-*.done.json")))


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
