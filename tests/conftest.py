"""Shared fixtures: isolated data/cache/runs folders and a CLI runner."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner


@pytest.fixture(scope="session", autouse=True)
def models_dir(tmp_path_factory):
    """Tiny models built locally (the describe stage's VLM folder) go to one temporary
    folder per session, never to ~/.cache; Dask workers inherit the variable."""
    folder = tmp_path_factory.mktemp("models")
    previous = os.environ.get("QFEAT_MODELS_DIR")
    os.environ["QFEAT_MODELS_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("QFEAT_MODELS_DIR", None)
    else:
        os.environ["QFEAT_MODELS_DIR"] = previous


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
    from cli.main import app

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke
