"""The embedded Dask cluster: loopback only, no HTTP port unless asked, quiet shutdown,
the driver's environment as it was."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import textwrap

import pytest

SNIPPET = """
import json, os, sys
from qfeat.pipeline.cluster import Resources, connect

KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED")
for key in KEYS:  # a user's environment without them
    os.environ.pop(key, None)
with connect(None, Resources("cpu", 2, 1), dashboard=False) as client:
    assert client.submit(sum, [1, 2, 3]).result() == 6
    info = client.scheduler_info()
    found = {
        "scheduler": info["address"],
        "services": info["services"],
        "workers": {a: w["services"] for a, w in info["workers"].items()},
        "worker_env": client.run(lambda: os.environ.get("OMP_NUM_THREADS")),
        "env_while_open": {k: os.environ.get(k) for k in KEYS},
        "callbacks": client.run(lambda dask_worker: sorted(dask_worker.periodic_callbacks)),
        "tick_s": client.run(lambda dask_worker: dask_worker._tick_interval),
    }
found["env_after"] = {k: os.environ.get(k) for k in KEYS}
print(json.dumps(found))
"""


def test_embedded_cluster_opens_no_http_port_and_closes_quietly():
    """With 8787 taken by someone else (a second run, a notebook), the cluster neither
    moves its HTTP server elsewhere with a warning nor serves one at all; scheduler and
    workers listen on loopback only, and closing kills no worker process."""
    holder = socket.socket()
    with contextlib.suppress(OSError):  # another process may hold it already: same test
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(SNIPPET)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        holder.close()
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["scheduler"].startswith("tcp://127.0.0.1:")
    assert info["services"] == {}  # no "dashboard"/HTTP service on the scheduler
    assert len(info["workers"]) == 2
    assert all(a.startswith("tcp://127.0.0.1:") for a in info["workers"])
    assert all(services == {} for services in info["workers"].values())
    for noise in ("already in use", "still alive", "killing", "Traceback"):
        assert noise not in done.stderr, done.stderr
    # workers run one OpenMP thread each as Dask sets it up; the nanny puts those settings
    # in the driver's environment to spawn them, and the driver gets its own back on close
    assert set(info["worker_env"].values()) == {"1"}
    assert info["env_while_open"]["OMP_NUM_THREADS"] == "1"
    assert info["env_after"] == dict.fromkeys(info["env_after"])
    # no dashboard, so none of Dask's housekeeping that only feeds one (cluster.py)
    for callbacks in info["callbacks"].values():
        assert "heartbeat" in callbacks and "profile" not in callbacks
    assert set(info["tick_s"].values()) == {1.0}


def test_dashboard_only_when_asked_and_on_loopback():
    code = textwrap.dedent(SNIPPET).replace("dashboard=False", "dashboard=True")
    code = code.replace(
        '"services": info["services"],',
        '"services": info["services"], "listen": sorted({c.laddr.ip for c in '
        '__import__("psutil").net_connections("tcp") if c.status == "LISTEN" and '
        'c.laddr.port == info["services"]["dashboard"]}),',
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["services"] == {"dashboard": 8787} or "already in use" in done.stderr
    assert info["listen"] == ["127.0.0.1"]
    assert all("profile" in c for c in info["callbacks"].values())  # Dask's defaults
    assert set(info["tick_s"].values()) == {0.02}


@pytest.mark.parametrize("traces", ["none", "one"])
def test_auto_device_imports_torch_only_where_a_gpu_may_be(traces, tmp_path):
    """No GPU driver trace on Linux: `auto` is cpu and the driver never imports torch;
    with one (here a stand-in path), torch decides."""
    code = textwrap.dedent(f"""
        import json, sys
        from qfeat.pipeline import cluster
        cluster.GPU_TRACES = () if {traces!r} == "none" else ({str(tmp_path)!r},)
        device = cluster.resolve_device("auto")
        imported = "torch" in sys.modules
        cuda = imported and sys.modules["torch"].cuda.is_available()
        print(json.dumps([device, imported, cuda]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    device, imported, cuda = json.loads(out.stdout)
    if traces == "none" and sys.platform == "linux":
        assert (device, imported) == ("cpu", False)
    else:
        assert imported and device == ("cuda" if cuda else "cpu")
