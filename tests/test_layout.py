"""The project's four top-level packages must come from this checkout, not sys.path."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["pipeline", "trainers", "cache", "cli"])
def test_package_imported_from_checkout(name):
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().parent == REPO / name


def test_packages_resolve_to_checkout_from_another_directory(tmp_path):
    """From an unrelated cwd (no repo on sys.path[0]) the installed qfeat is this checkout."""
    code = (
        "import pipeline, trainers, cache, cli, sys;"
        "print('\\n'.join(m.__file__ for m in (pipeline, trainers, cache, cli)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()
    assert [Path(p).resolve().parent.parent for p in out] == [REPO] * 4


def test_console_script_points_at_cli():
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts.get("qfeat") == "cli.main:app"


def test_repository_layout():
    for rel in ("pyproject.toml", "Makefile", "README.md", ".ci/run", "requirements.lock"):
        assert (REPO / rel).is_file(), rel
    for rel in ("pipeline", "trainers", "cache", "cli", "tests", "benchmarks"):
        assert (REPO / rel).is_dir(), rel


def test_lock_pins_torch_pair_and_tools():
    pins = dict(
        line.strip().split("==", 1)
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line
    )
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert "pytest" in pins and "ruff" in pins
