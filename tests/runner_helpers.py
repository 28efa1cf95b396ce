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

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FRAMES = ("--stages", "frames")  # fault tests check the frames stage only


def features_args(root: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "features", "demo-video", "--root", str(root), "--cache-dir", str(cache),
        "--limit", "24", "--shard-size", "4", "--workers", "2", *extra,
    ]  # fmt: skip


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
