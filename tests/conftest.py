"""Shared fixtures: isolated data/cache/runs folders, a CLI runner, and the demo caches
and runs many modules read (built once per session)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from tests import background

# What a user may have exported that changes what qfeat does: the suite runs as in a clean
# environment whatever is set (an offline user exports HF_HUB_OFFLINE=1, a SLURM log has
# COLUMNS=80). Removed before any test module imports huggingface_hub, which reads its
# variables once at import. Kept: the suite's own switches.
KEPT = ("QFEAT_TEST_", "QFEAT_THREADS", "QFEAT_UPDATE_GOLDEN")
NEUTRALISED = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "COLUMNS", "LINES")


def neutral_environment(environ) -> list[str]:
    """Remove from ``environ`` what a user exported that tests must not see; the names."""
    names = [n for n in environ if n in NEUTRALISED or n.startswith("QFEAT_")]
    names = [n for n in names if not n.startswith(KEPT)]
    for name in names:
        del environ[name]
    return names


neutral_environment(os.environ)

#: Fixtures that start an embedded Dask cluster (the session's demo caches and runs).
CLUSTER_FIXTURES = {"demo_images", "demo_videos", "rsa_run", "scma_run"}
#: What in a test module's source means it starts a process or a Dask cluster: every test
#: of such a module is left out of the unit tier (coarse, but a guard in that tier fails
#: any test that still starts one, naming the marker it needs).
STARTS = {
    "subprocess": ("subprocess", "Popen", "multiprocessing", "CliRunner().invoke(app, [\"make"),
    "cluster": ('"features"', "'features'", '"stage",', "RunRequest", "prepare(", "LocalCluster",
                "_demo_cache", "qfeat.pipeline.cluster", "run_features", "bench_scripts"),
}  # fmt: skip


def _starts(path, cache: dict) -> list[str]:
    """The markers a test module's source calls for (see :data:`STARTS`)."""
    if path not in cache:
        text = path.read_text() if path.suffix == ".py" else ""
        cache[path] = [m for m, words in STARTS.items() if any(w in text for w in words)]
    return cache[path]


def pytest_addoption(parser):
    parser.addoption(
        "--unit",
        action="store_true",
        help="the unit tier (make test-unit): no Dask cluster, no subprocess; tests marked "
        "cluster, subprocess, slow, background or browser are left out, and a test that "
        "still starts a cluster or a subprocess fails saying which marker it needs",
    )


def pytest_collection_modifyitems(config, items):
    sources: dict = {}
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "chromium" in names:
            item.add_marker(pytest.mark.browser)
        if names & CLUSTER_FIXTURES:
            item.add_marker(pytest.mark.cluster)
        for marker in _starts(item.path, sources):
            item.add_marker(getattr(pytest.mark, marker))
    if config.getoption("--unit"):
        tiers = ("cluster", "subprocess", "slow", "background", "browser")
        kept = [i for i in items if not any(i.get_closest_marker(m) for m in tiers)]
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def pytest_configure(config):
    config.pluginmanager.register(background, "qfeat-background")


@pytest.fixture(autouse=True)
def unit_tier_guard(request, monkeypatch):
    """In the unit tier, starting a subprocess or a Dask cluster fails the test, naming
    the marker that moves it to `make test`."""
    if not request.config.getoption("--unit"):
        yield
        return
    import subprocess

    import h5py  # noqa: F401  (its first import asks ctypes' find_library, which runs ldconfig)

    def refuse(marker: str):
        def fail(*args, **kwargs):
            raise RuntimeError(
                f"the unit tier (make test-unit) starts no {marker}: mark this test "
                f"@pytest.mark.{marker} (it still runs in make test)"
            )

        return fail

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("subprocess"))
    import distributed

    monkeypatch.setattr(distributed.LocalCluster, "__init__", refuse("cluster"))
    monkeypatch.setattr(distributed.Client, "__init__", refuse("cluster"))
    yield


def _session_env(name: str, value: str):
    """Set environment variable ``name`` for the whole session (Dask workers inherit it),
    then restore what was there."""
    previous = os.environ.get(name)
    os.environ[name] = value
    yield
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous


@pytest.fixture(scope="session", autouse=True)
def models_dir(tmp_path_factory):
    """Tiny models built locally (the describe stage's VLM folder) go to one temporary
    folder per session, never to ~/.cache."""
    folder = tmp_path_factory.mktemp("models")
    yield from _session_env("QFEAT_MODELS_DIR", str(folder))


@pytest.fixture(scope="session", autouse=True)
def hash_store(tmp_path_factory):
    """Remembered weight digests (cache/weights_hash.py) go to a temporary file, never
    to ~/.cache."""
    yield from _session_env("QFEAT_HASH_CACHE", str(tmp_path_factory.mktemp("h") / "w.json"))


@pytest.fixture(scope="session")
def shared_clusters(models_dir, hash_store):
    """Embedded Dask clusters reused by the session's in-process feature runs (see
    tests/shared_cluster.py for when a run gets its own)."""
    from qfeat.pipeline import cluster
    from tests.shared_cluster import SharedClusters

    shared = SharedClusters(cluster.connect)
    yield shared
    shared.close()


@pytest.fixture(autouse=True)
def reuse_cluster(shared_clusters, monkeypatch):
    monkeypatch.setattr("qfeat.pipeline.runner.connect", shared_clusters.connect)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Point every qfeat location at a temporary folder so tests never touch ./data."""
    monkeypatch.setenv("QFEAT_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("QFEAT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QFEAT_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def qfeat(runner):
    """Invoke the qfeat CLI in-process: ``qfeat("datasets", "--json")`` -> Result."""
    from qfeat.cli.main import app

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


# -- shared demo caches and runs (session scope: built once, read by many modules) ---------
# Tests read these; a test that changes a cache or run folder copies it first.


def _cli_ok(*args) -> None:
    from qfeat.cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def demo_image_data(tmp_path_factory) -> Path:
    """The demo image set, generated once per session (read-only: copy it to change it)."""
    from qfeat.pipeline.demo import images

    root = tmp_path_factory.mktemp("demo-data") / "demo"
    images.generate(root)
    return root


@pytest.fixture(scope="session")
def demo_video_data(tmp_path_factory) -> Path:
    """The demo video set, generated once per session (read-only: copy it to change it)."""
    from qfeat.pipeline.demo import videos

    root = tmp_path_factory.mktemp("demo-data") / "demo-video"
    videos.generate(root)
    return root


def _demo_cache(tmp_path_factory, dataset: str, data: Path, limit: int) -> SimpleNamespace:
    """The first ``limit`` items of a demo set through all its stages (tiny preset)."""
    root = tmp_path_factory.mktemp(dataset)
    _cli_ok("features", dataset, "--root", data, "--cache-dir", root / "cache",
            "--limit", limit, "--workers", 1)  # fmt: skip
    return SimpleNamespace(root=root, data=data, cache=root / "cache", limit=limit)


def _demo_run(demo: SimpleNamespace, trainer: str, dataset: str, epochs: int) -> Path:
    """A run named ``trainer`` on a demo cache: 2 splits, ``epochs`` epochs, on CPU."""
    runs = demo.root / "runs"
    _cli_ok("train", trainer, dataset, "--cache-dir", demo.cache, "--runs-dir", runs,
            "--run", trainer, "--splits", 2, "--epochs", epochs, "--device", "cpu")  # fmt: skip
    return runs / trainer


@pytest.fixture(scope="session")
def demo_images(tmp_path_factory, demo_image_data) -> SimpleNamespace:
    """The first 48 demo images through all four image stages."""
    return _demo_cache(tmp_path_factory, "demo", demo_image_data, 48)


@pytest.fixture(scope="session")
def rsa_run(demo_images) -> Path:
    """An RSA run on ``demo_images``: 2 splits, 3 epochs."""
    return _demo_run(demo_images, "rsa", "demo", 3)


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory, demo_video_data) -> SimpleNamespace:
    """The first 36 demo videos through the frames and clip stages."""
    return _demo_cache(tmp_path_factory, "demo-video", demo_video_data, 36)


@pytest.fixture(scope="session")
def scma_run(demo_videos) -> Path:
    """An SCMA run on ``demo_videos``: 2 splits, 2 epochs."""
    return _demo_run(demo_videos, "scma", "demo-video", 2)
