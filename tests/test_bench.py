"""Every script behind ``make bench`` runs end to end in its ``--dry-run`` mode (tiny
sizes, results to a file of the test's own), so none can rot between real runs.

The scripts are read from the Makefile's ``bench`` recipe: a script added there is
tested here without another line. benchmarks/gpu.py has its own test (test_bench_gpu).
"""

from __future__ import annotations

import importlib
import json
import math
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def bench_scripts() -> list[str]:
    """The ``benchmarks.X`` modules the Makefile's ``bench`` target runs, in order."""
    recipe = re.search(r"^bench:.*?\n((?:\t.*\n)+)", (REPO / "Makefile").read_text(), re.M)
    assert recipe, "no bench target in the Makefile"
    return re.findall(r"-m (benchmarks\.\w+)", recipe.group(1))


def test_bench_recipe_lists_the_scripts():
    scripts = bench_scripts()
    assert {"benchmarks.train_rsa", "benchmarks.sam", "benchmarks.frames"} <= set(scripts)
    on_disk = {f"benchmarks.{p.stem}" for p in (REPO / "benchmarks").glob("*.py")}
    assert set(scripts) <= on_disk


@pytest.fixture(scope="module")
def demo_sets(tmp_path_factory, demo_image_data, demo_video_data) -> Path:
    """The session's generated demo sets side by side (what ``--demo-root`` takes)."""
    root = tmp_path_factory.mktemp("bench-demo")
    for data in (demo_image_data, demo_video_data):
        (root / data.name).symlink_to(data, target_is_directory=True)
    return root


@pytest.mark.parametrize("script", bench_scripts())
def test_bench_script_dry_run(script, tmp_path, demo_sets):
    out = tmp_path / "results.json"
    argv = ["--dry-run", "--out", str(out), "--demo-root", str(demo_sets)]
    importlib.import_module(script).main(argv)
    result = json.loads(out.read_text())
    assert {"cpu", "cores", "torch", "date"} <= set(result["machine"])
    sections = set(result) - {"machine"}
    assert sections, f"{script} recorded nothing"
    for name, ratio in result.get("ratios", {}).items():
        assert math.isfinite(ratio) and ratio > 0, (script, name, ratio)
