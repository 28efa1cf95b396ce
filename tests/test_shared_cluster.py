"""The session's shared Dask cluster (tests/shared_cluster.py) stays shared once the
libraries qfeat's stages use are imported, and a test that changes the environment
still gets a cluster of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from tests.shared_cluster import SharedClusters

REPO = Path(__file__).resolve().parents[1]
CPU = SimpleNamespace(device="cpu", workers=1)


def test_importing_the_stage_libraries_keeps_the_cluster_shareable():
    """open_clip sets TOKENIZERS_PARALLELISM and decord appends to PATH when imported;
    counted as a test's own change, they made every later run start its own cluster."""
    code = (
        "import os\n"
        "from tests import shared_cluster as s\n"
        "before, env = s._state(), dict(os.environ)\n"
        "import av, decord, open_clip, segment_anything, torch, torchvision, transformers\n"
        "changed = {k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)}\n"
        "assert changed, 'the libraries no longer touch the environment: test is moot'\n"
        "assert s._state() == before, sorted(changed)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_test_that_changes_the_environment_gets_its_own_cluster(monkeypatch, tmp_path):
    shared = SharedClusters(real_connect=None)
    assert shared.shareable(None, CPU, False)
    assert not shared.shareable("tcp://127.0.0.1:8786", CPU, False)
    assert not shared.shareable(None, CPU, True)
    monkeypatch.setenv("PATH", f"{tmp_path}:{sys.prefix}/bin")
    assert not shared.shareable(None, CPU, False)
    monkeypatch.undo()
    # a value other than the one there (conftest removes an exported one; be sure anyway)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0" if os.environ.get("HF_HUB_OFFLINE") == "1" else "1")
    assert not shared.shareable(None, CPU, False)
