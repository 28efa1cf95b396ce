"""Shared fixtures: isolated data/cache/runs folders and a CLI runner."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner


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
