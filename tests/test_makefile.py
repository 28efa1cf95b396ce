"""Makefile contract: help lists targets, every target installs first, clean is safe."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the torch pair exactly as requirements.lock pins it (the only place it is pinned)
TORCH_PAIR = " ".join(
    line for line in (REPO / "requirements.lock").read_text().splitlines()
    if line.startswith(("torch==", "torchvision=="))
)  # fmt: skip


def _copy(tmp_path: Path) -> Path:
    for name in ("Makefile", "requirements.lock", "requirements-dev.lock", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def _make(cwd: Path, *args: str) -> str:
    # Run as a top-level make even when the suite itself runs under `make test`.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_help_is_default_and_lists_one_line_per_target(tmp_path):
    out = _make(_copy(tmp_path))
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    assert {"help", "install", "test", "lint", "clean"} <= set(names)
    assert len(names) == len(set(names))


def test_targets_install_first_on_fresh_clone(tmp_path):
    cwd = _copy(tmp_path)
    for target in ("test", "lint"):
        plan = _make(cwd, "-n", target)
        assert "-m venv .venv" in plan
        assert plan.index(f"install -q {TORCH_PAIR}") < plan.index("-r requirements.lock")


def test_torch_pair_is_read_from_the_lock_file(tmp_path):
    cwd = _copy(tmp_path)
    lock = (cwd / "requirements.lock").read_text()
    (cwd / "requirements.lock").write_text(lock.replace("torch==", "torch==9.9.9x"))
    assert "install -q torch==9.9.9x" in _make(cwd, "-n", "install")


def test_install_is_idempotent_via_stamp(tmp_path):
    cwd = _copy(tmp_path)
    (cwd / ".venv").mkdir()
    (cwd / ".venv" / ".qfeat-installed").touch()
    assert "pip install" not in _make(cwd, "-n", "install")


def test_clean_keeps_data_cache_and_runs(tmp_path):
    cwd = _copy(tmp_path)
    keep = ["data/demo/x.png", "qfeat-cache/demo/m.json", "runs/r1/metrics.json"]
    drop = ["build/lib/a.py", "qfeat.egg-info/PKG-INFO", "pipeline/__pycache__/a.pyc"]
    for rel in keep + drop:
        (cwd / rel).parent.mkdir(parents=True, exist_ok=True)
        (cwd / rel).write_text("x")
    _make(cwd, "clean")
    assert all((cwd / rel).exists() for rel in keep)
    assert not any((cwd / rel).exists() for rel in drop)


def test_make_train_takes_any_registered_trainer(tmp_path):
    """`make train TRAINER=probe`; without TRAINER the registry's default for the
    dataset's modality (looked up, not written into the Makefile)."""
    cwd = _copy(tmp_path)
    named = _make(cwd, "-n", "train", "DATASET=demo-video", "TRAINER=probe")
    assert named.splitlines()[-1].endswith("qfeat train probe demo-video")
    default = _make(cwd, "-n", "train", "DATASET=demo").splitlines()[-1]
    assert "trainer_for(get_adapter(sys.argv[1]).modality).name" in default
