"""qfeat installs and imports the way users install it: a wheel, one import name.

The wheel is built from a copy of this checkout and installed (not editable) into a
fresh virtual environment that sees the project venv's heavy packages through a ``.pth``
line, then used from a folder that holds its own ``pipeline/``, ``cache/``, ``cli/`` and
``trainers/`` packages, as a researcher's repository may.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from email.parser import Parser
from importlib.metadata import packages_distributions
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement

from qfeat.cache.fingerprint import build_manifest
from qfeat.cache.writer import ShardWriter, create_stage_dir

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("qfeat", "pipeline", "cache", "cli", "trainers")
GENERIC = ("pipeline", "cache", "cli", "trainers")


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def imported_modules() -> dict[str, list[str]]:
    """Top-level third-party module -> the files importing it (every import, lazy too)."""
    found: dict[str, list[str]] = {}
    for folder in SOURCES:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top != "qfeat" and top not in sys.stdlib_module_names:
                        found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (the checkout gets no build/ folder)."""
    src = tmp_path_factory.mktemp("src")
    for name in (*SOURCES, "pyproject.toml", "README.md"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(src)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (built,) = out.glob("qfeat-*.whl")
    return built


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(zf.read(meta).decode())
    return [Requirement(r) for r in message.get_all("Requires-Dist")]


def test_every_imported_module_is_a_declared_dependency(wheel):
    """Each third-party module the code imports (at top level or lazily) belongs to a
    distribution the wheel requires without an extra, or, for an optional model whose
    import failure names its extra (sam2: tests/test_sam2.py), in that extra."""
    requirements = wheel_requirements(wheel)
    runtime = {_normalise(r.name) for r in requirements if "extra" not in str(r.marker or "")}
    runtime |= {_normalise(r.name) for r in requirements if 'extra == "sam2"' in str(r.marker)}
    assert {"sam2", "hydra-core", "omegaconf"} <= runtime
    dists = packages_distributions()
    modules = imported_modules()
    assert {"torch", "transformers", "segment_anything", "pycocotools"} <= set(modules)
    undeclared = {
        module: files
        for module, files in modules.items()
        if not {_normalise(d) for d in dists.get(module, [module])} & runtime
    }
    assert not undeclared, f"imported but not in pyproject's dependencies: {undeclared}"


def test_wheel_declares_extras_and_keeps_tools_out_of_runtime(wheel):
    requirements = wheel_requirements(wheel)
    by_extra: dict[str, set[str]] = {}
    for r in requirements:
        marker = str(r.marker or "")
        extra = marker.split("extra ==")[1].strip().strip("\"'") if "extra ==" in marker else ""
        by_extra.setdefault(extra, set()).add(_normalise(r.name))
    assert {"pytest", "ruff"} <= by_extra["dev"]
    assert "openpyxl" in by_extra["xlsx"]
    assert not {"pytest", "ruff", "openpyxl"} & by_extra[""]


def test_wheel_holds_every_package_under_qfeat(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    inits = {n.rsplit("/", 1)[0] for n in names if n.endswith("/__init__.py")}
    expected = {"qfeat"} | {
        "qfeat/" + str(p.parent.relative_to(REPO))
        for folder in GENERIC
        for p in (REPO / folder).rglob("__init__.py")
    }
    assert inits == expected
    assert not [n for n in names if n.split("/")[0] in GENERIC]
    assert "qfeat/pipeline/presets/tiny.toml" in names


def _tiny_cache(cache: Path) -> None:
    ids = ["a.png", "b.png", "c.png"]
    manifest = build_manifest(
        stage="backbone", stage_version=1, config={"input_size": 4},
        model={"name": "tiny", "seed": 0}, upstream={},
        dataset={"adapter": "csv", "name": "mine", "options": {}},
        item_ids=ids, shard_size=4, arrays=["features"],
    )  # fmt: skip
    folder = create_stage_dir(cache, "mine", manifest)
    columns = {"item_id": ids, "status": ["ok"] * 3, "error": [None] * 3}
    ShardWriter(folder, 0).write(
        columns, {"features": np.arange(6, dtype=np.float32).reshape(3, 2)}
    )


USER_SNIPPET = """
import sys
import pipeline, cache, cli, trainers          # the user's own packages
import qfeat

assert pipeline.OWNER == cache.OWNER == cli.OWNER == trainers.OWNER == "user"
assert qfeat.__version__ == "{version}", qfeat.__version__
stage = qfeat.open_stage(sys.argv[1], "mine", "backbone")
print("rows", len(stage.table()), "sum", float(stage.array("features").sum()))
print("joined", list(qfeat.join_stages([stage]).columns)[:2])
print("modality", qfeat.get_adapter("koniq").modality)
try:
    qfeat.load_run("no-such-run", runs_dir=sys.argv[1])
except qfeat.DatasetError as exc:
    print("error", type(exc).__name__)
print("qfeat from", qfeat.__file__)
"""


@pytest.mark.slow
def test_installed_wheel_works_beside_a_users_own_packages(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    # the heavy packages (torch, ...) come from the project venv, after the fresh one's own
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    python = str(venv / "bin" / "python")
    found = subprocess.run([python, "-c", purelib], check=True, capture_output=True, text=True)
    site = Path(found.stdout.strip())
    (site / "heavy.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "research"
    for name in GENERIC:
        (work / name).mkdir(parents=True)
        (work / name / "__init__.py").write_text('OWNER = "user"\n')
    (work / "snippet.py").write_text(
        textwrap.dedent(USER_SNIPPET).format(version=wheel.name.split("-")[1])
    )
    _tiny_cache(tmp_path / "cache")

    def run(*args: str) -> str:
        done = subprocess.run(list(args), cwd=work, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    version = wheel.name.split("-")[1]
    assert run(str(venv / "bin" / "qfeat"), "--version").strip() == f"qfeat {version}"
    assert run(str(venv / "bin" / "python"), "-m", "qfeat", "--version").strip() == (
        f"qfeat {version}"
    )
    assert "koniq" in run(str(venv / "bin" / "qfeat"), "datasets")
    out = run(str(venv / "bin" / "python"), "snippet.py", str(tmp_path / "cache"))
    assert "rows 3 sum 15.0" in out
    assert "joined ['item_id'," in out
    assert "modality image" in out
    assert "error " in out
    installed = out.split("qfeat from ")[1].strip()
    assert Path(installed).is_relative_to(venv), installed


def test_xlsx_without_openpyxl_names_the_extra(tmp_path, monkeypatch):
    from qfeat import DatasetError
    from qfeat.pipeline.datasets.tables import read_xlsx

    (tmp_path / "mos.xlsx").write_bytes(b"PK")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # as if it were not installed
    with pytest.raises(DatasetError, match=r"qfeat\[xlsx\]"):
        read_xlsx(tmp_path / "mos.xlsx")
