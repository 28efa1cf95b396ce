"""`--scheduler` pointing at something that is not a Dask scheduler fails within seconds
with a clear message instead of hanging in the handshake (issue 24.8)."""

from __future__ import annotations

import asyncio
import http.server
import socket
import socketserver
import threading
import time

import pytest

from qfeat.errors import DatasetError, OptionError
from qfeat.pipeline.cluster import probe_scheduler


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _Chatty(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")


@pytest.fixture
def banner_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Chatty)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_plain_http_server_is_refused_within_seconds(http_server):
    start = time.monotonic()
    with pytest.raises(DatasetError, match="said nothing within 1 s: it is not a Dask scheduler"):
        probe_scheduler(http_server, timeout=1.0)
    assert time.monotonic() - start < 5  # a bound on a hang, not a benchmark


def test_a_server_speaking_another_protocol_is_refused(banner_server):
    with pytest.raises(DatasetError, match="answered, but not as a Dask scheduler"):
        probe_scheduler(banner_server, timeout=2.0)


def test_a_closed_port_and_a_bad_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DatasetError, match="cannot reach the Dask scheduler"):
        probe_scheduler(f"tcp://127.0.0.1:{port}")
    with pytest.raises(OptionError, match="expected tcp://HOST:PORT"):
        probe_scheduler("tcp://127.0.0.1:notaport")


def test_a_real_scheduler_passes():
    from distributed import Scheduler

    async def main():
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address=None) as scheduler:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, probe_scheduler, scheduler.address)

    asyncio.run(main())


def test_features_names_the_problem(qfeat, http_server, demo_images, tmp_path):
    result = qfeat("features", "demo", "--root", str(demo_images.data), "--cache-dir",
                   str(tmp_path / "c"), "--limit", "2", "--scheduler", http_server)  # fmt: skip
    assert result.exit_code == 1 and "not a Dask scheduler" in result.output


def test_a_scheduler_without_workers_is_said_and_said_again():
    """Issue 24.8: a scheduler with no workers made features wait silently."""
    from distributed import Client, LocalCluster

    from qfeat.pipeline.runner import Progress, wait_for_workers

    class Heard(Progress):
        def __init__(self):
            self.waits = []

        def waiting_for_workers(self, address, seconds):
            self.waits.append(seconds)

    heard = Heard()
    with (
        LocalCluster(
            n_workers=0, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
        ) as c,
        Client(c) as client,
    ):
        threading.Timer(1.6, lambda: c.scale(1)).start()
        wait_for_workers(client, c.scheduler_address, heard, first=0.3, every=0.5)
        assert client.scheduler_info()["workers"]
    assert len(heard.waits) >= 2 and heard.waits[0] >= 0.3  # told, then told again


def test_a_lost_task_says_what_happened():
    """Issue 24.8: a killed scheduler ended with `failed after retries: NoneType: None`;
    issue 40.6: "retried" only where the task was."""
    from types import SimpleNamespace

    from qfeat.pipeline.runner import failure_reason

    lost = SimpleNamespace(status="cancelled", exception=lambda: None)
    assert "scheduler (or the connection to it) went away" in failure_reason(lost)
    assert "NoneType" not in failure_reason(lost)
    failed = SimpleNamespace(status="error", exception=lambda: RuntimeError("shard broke"))
    assert failure_reason(failed) == "RuntimeError: shard broke (raised again on each of 2 retries)"
    assert "retries" not in failure_reason(lost)  # issue 40.6: never retried, never said


def test_a_result_lost_with_the_scheduler_is_a_failed_shard():
    """CI 2026-12-03: a shard finished, then the scheduler died before its result was
    fetched; `future.result()` raised CommClosedError and the driver crashed with a
    traceback instead of the one-line scheduler message."""
    from types import SimpleNamespace

    from distributed.comm.core import CommClosedError

    from qfeat.pipeline.runner import failure_reason, shard_outcome

    def gone():
        raise CommClosedError("in <TCP (closed) ConnectionPool.gather>: Stream is closed")

    stats, failure = shard_outcome(SimpleNamespace(status="finished", result=gone))
    why = failure.reason
    assert stats is None and not failure.permanent
    assert why.startswith("CommClosedError while asking for the result")
    assert "scheduler (or the connection to it) went away" in why
    ok = SimpleNamespace(status="finished", result=lambda: {"ok": 2, "failed": 0, "rows": 2})
    assert shard_outcome(ok) == ({"ok": 2, "failed": 0, "rows": 2}, None)
    lost = SimpleNamespace(status="cancelled", exception=lambda: None)
    assert shard_outcome(lost)[1].reason == failure_reason(lost)
