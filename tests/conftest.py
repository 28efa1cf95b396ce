"""Shared fixtures: isolated data/cache/runs folders and a CLI runner."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner


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
