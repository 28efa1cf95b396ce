"""Every command README.md shows runs as written.

Each fenced block of `qfeat …` / `make …` lines in README.md starts with a comment
`# tested by tests/test_readme_tour.py::NAME`; NAME runs exactly that block's commands,
in order, on the demo data. The image and video tours reuse the session's demo caches
(tests/conftest.py: the first 48 images, the first 36 videos), copied, so their
`qfeat features` line finds its shards done and the tour costs only the trainings.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
TESTED_BY = re.compile(r"^# tested by (tests/[\w/]+\.py)::(\w+)")


def readme_blocks() -> list[tuple[str | None, list[str]]]:
    """(test name or None, command lines) for each fenced block holding commands."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = []
    for body in re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", text, re.S | re.M):
        lines = [line for line in body.splitlines() if line.strip()]
        commands = [
            line.split("  #")[0].strip() for line in lines if re.match(r"(qfeat|make) ", line)
        ]
        if not commands:
            continue
        named = TESTED_BY.match(lines[0])
        blocks.append((named.group(2) if named else None, commands))
    return blocks


def block(name: str) -> list[str]:
    found = [commands for test, commands in readme_blocks() if test == name]
    assert len(found) == 1, f"README.md has {len(found)} blocks tested by {name}"
    return found[0]


def test_every_command_block_names_a_test_here_that_exists():
    blocks = readme_blocks()
    assert len(blocks) >= 3, blocks
    names = {test for test, _ in blocks}
    assert None not in names, [c for t, c in blocks if t is None]
    for test in names:
        assert callable(globals().get(test)), f"README names {test}, not in {__name__}"


def run_block(commands: list[str], exits: dict[str, tuple[int, ...]] | None = None) -> list[str]:
    """Each command's output; each must exit 0 unless ``exits`` allows other codes."""
    from qfeat.cli.main import app

    outputs = []
    for line in commands:
        argv = shlex.split(line)
        assert argv[0] == "qfeat", line
        result = CliRunner().invoke(app, argv[1:], catch_exceptions=False)
        assert result.exit_code in (exits or {}).get(line, (0,)), f"{line}\n{result.output}"
        outputs.append(result.output)
    return outputs


def tour_folder(tmp_path, monkeypatch, *, data: Path, cache: Path, run: Path, name: str) -> Path:
    """A working folder laid out as the defaults expect (data/, qfeat-cache/, runs/),
    holding copies of a shared demo cache and of the shared run trained with the tour's
    settings (renamed ``name``: its `qfeat train` line then resumes a finished run); the
    data root is the session's demo data."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(data.parent, target_is_directory=True)
    shutil.copytree(cache, tmp_path / "qfeat-cache")
    shutil.copytree(run, tmp_path / "runs" / name)
    monkeypatch.setenv("QFEAT_DATA_ROOT", str(data.parent))
    monkeypatch.setenv("QFEAT_CACHE_DIR", "qfeat-cache")
    monkeypatch.setenv("QFEAT_RUNS_DIR", "runs")
    return tmp_path


def readme_python_block() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.search(r"^```python\n(import qfeat\n.*?)^```", text, re.S | re.M).group(1)


@pytest.mark.slow
def test_image_tour(demo_images, rsa_run, tmp_path, monkeypatch):
    commands = block("test_image_tour")
    # the sizes of the shared cache and run (tests/conftest.py)
    assert commands[0] == "qfeat features demo --limit 48"
    assert commands[1] == "qfeat train rsa demo --splits 2 --epochs 3 --run rsa-trial"
    here = tour_folder(tmp_path, monkeypatch, data=demo_images.data, cache=demo_images.cache,
                       run=rsa_run, name="rsa-trial")  # fmt: skip
    features, rsa, glob_, probe, predict, report, table = run_block(commands)
    assert "already done" in features, features  # the shared cache was reused
    assert "rsa-trial" in rsa and (here / "runs" / "global-trial" / "metrics.json").is_file()
    assert (here / "runs" / "probe-trial" / "metrics.json").is_file(), probe
    assert "checker-a_ref.png" in predict and "scored 1" in predict, predict
    assert (here / "runs" / "rsa-trial" / "report.html").is_file()
    assert all(name in table for name in ("rsa-trial", "global-trial", "probe-trial")), table
    # the Python API block reads what the tour wrote
    namespace: dict = {}
    exec(readme_python_block(), namespace)  # noqa: S102 - our own README
    assert len(namespace["listing"].items) == 504 and namespace["feats"].shape[0] == len(
        namespace["table"]
    )


@pytest.mark.slow
def test_video_tour(demo_videos, scma_run, tmp_path, monkeypatch):
    commands = block("test_video_tour")
    assert commands[0] == "qfeat features demo-video --limit 36"
    assert commands[1] == "qfeat train scma demo-video --splits 2 --epochs 2 --run scma-trial"
    here = tour_folder(tmp_path, monkeypatch, data=demo_videos.data, cache=demo_videos.cache,
                       run=scma_run, name="scma-trial")  # fmt: skip
    features, train, predict, report, runs = run_block(commands)
    assert "already done" in features, features
    assert "scma-trial" in train, train
    assert "ball_ref.mp4" in predict and "scored 1" in predict, predict
    assert (here / "runs" / "scma-trial" / "report.html").is_file()
    assert "scma-trial" in runs, runs


def test_own_dataset_block(tmp_path, monkeypatch):
    from tests.fixtures import layouts

    layouts.koniq(tmp_path / "data" / "koniq", n_per_split=(14, 2, 4), clean=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QFEAT_DATA_ROOT", "data")
    # `qfeat weights` exits 1 while a file is missing or a hub model cannot be reached
    # (offline here), 0 where the hub answers; either way it names each file to get
    outputs = run_block(block("test_own_dataset_block"), exits={"qfeat weights": (0, 1)})
    datasets, check, weights = outputs
    assert "koniq" in datasets and "labels" in datasets
    assert "20" in check, check
    assert "regions.checkpoint: not set; get sam_vit_h_4b8939.pth" in weights, weights


def test_install_block():
    """`make demo` and `make test` (as a dry run: the plan make would execute)."""
    commands = block("test_install_block")
    assert commands == ["make demo", "make test"], commands
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    plans = {
        line: subprocess.run(
            [*shlex.split(line), "-n", "--no-print-directory"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in commands
    }
    demo = plans["make demo"]
    for step in ("qfeat features demo\n", "qfeat features demo-video\n", "qfeat train "):
        assert step in demo, demo
    assert "-m pytest" in plans["make test"], plans["make test"]
