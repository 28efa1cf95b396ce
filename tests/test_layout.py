"""The repository keeps the design card's top-level folders; installed, they are qfeat.*."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "trainers", "cache", "cli")


@pytest.mark.parametrize("name", PACKAGES)
def test_package_imported_from_checkout(name):
    module = importlib.import_module(f"qfeat.{name}")
    assert Path(module.__file__).resolve().parent == REPO / name


def test_packages_resolve_to_checkout_from_another_directory(tmp_path):
    """From an unrelated cwd (no repo on sys.path[0]) the installed qfeat is this checkout,
    and none of its packages is importable under its bare generic name."""
    code = (
        "import importlib.util as u, qfeat.pipeline, qfeat.trainers, qfeat.cache, qfeat.cli;"
        "print('\\n'.join(m.__file__ for m in (qfeat.pipeline, qfeat.trainers, qfeat.cache,"
        " qfeat.cli)));"
        "print([n for n in ('pipeline', 'trainers', 'cache', 'cli') if u.find_spec(n)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert [Path(p).resolve().parent.parent for p in out[:4]] == [REPO] * 4
    assert out[4] == "[]"


def test_console_script_points_at_cli():
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts.get("qfeat") == "qfeat.cli.main:app"


def test_repository_layout():
    for rel in ("pyproject.toml", "Makefile", "README.md", ".ci/run", "requirements.lock"):
        assert (REPO / rel).is_file(), rel
    for rel in (*PACKAGES, "qfeat", "tests", "benchmarks"):
        assert (REPO / rel).is_dir(), rel


def _pins(name: str) -> dict[str, str]:
    lines = (REPO / name).read_text().splitlines()
    return dict(line.strip().split("==", 1) for line in lines if "==" in line)


def test_lock_pins_torch_pair_and_tools():
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert runtime["torch"] and runtime["torchvision"]  # the one place they are pinned
    # the tools are the dev extra's pins, not runtime requirements
    assert "pytest" in dev and "ruff" in dev and "setuptools" in dev
    assert not {"pytest", "ruff"} & set(runtime)


def _qfeat_imports(path: Path) -> set[str]:
    """The qfeat packages a module imports (``qfeat.cache``, ``qfeat.errors``, ...)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found |= {".".join(n.split(".")[:2]) for n in names if n.startswith("qfeat.")}
    return found


def test_layers_import_downwards_only():
    """cli -> trainers -> pipeline -> cache, with qfeat.errors the leaf every layer uses:
    the cache never imports the pipeline, trainers or CLI; nothing imports the CLI."""
    assert _qfeat_imports(REPO / "qfeat" / "errors.py") == set()
    allowed = {
        "cache": {"qfeat.cache", "qfeat.errors"},
        "pipeline": {"qfeat.pipeline", "qfeat.cache", "qfeat.errors"},
        "trainers": {"qfeat.trainers", "qfeat.pipeline", "qfeat.cache", "qfeat.errors"},
    }
    wrong = {
        str(path.relative_to(REPO)): sorted(_qfeat_imports(path) - allowed[layer])
        for layer in allowed
        for path in (REPO / layer).rglob("*.py")
        if _qfeat_imports(path) - allowed[layer]
    }
    assert not wrong


def test_every_status_word_is_declared_once():
    """Error kinds (ItemError/VideoError) and the statuses stages write are the words of
    qfeat.errors.STATUSES, so one failure reads the same in every stage."""
    import ast

    from qfeat.errors import STATUSES

    used = set()
    for folder in ("pipeline", "trainers", "cache"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", "") in ("ItemError", "VideoError")
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    used.add(node.args[0].value)
                if isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if (
                            isinstance(key, ast.Constant)
                            and key.value == "status"
                            and isinstance(value, ast.Constant)
                        ):
                            used.add(value.value)
    assert {"missing", "decode_error", "upstream_error", "error"} <= used
    assert used <= set(STATUSES), used - set(STATUSES)


def test_the_command_starts_without_the_heavy_libraries():
    """Issue 23.7: each CLI start took 13-19 s on a loaded machine. Starting the command
    (and `--help`, `--version`) must not import torch, open_clip, transformers, dask or
    the video readers; they load only when a command needs them."""
    import subprocess
    import sys

    heavy = ["torch", "open_clip", "transformers", "timm", "distributed", "decord", "av", "cv2"]
    code = (
        "import sys\nimport qfeat.cli.main\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_scaling_doc_loopback_recipe_binds_every_port_to_loopback():
    """Issue 24.9: the one-machine Dask recipe left the dashboards on every interface."""
    readme = (REPO / "docs" / "scaling.md").read_text()
    starts = [line for line in readme.splitlines() if line.startswith("$ dask ")]
    assert len(starts) >= 2, starts  # the scheduler and the worker of that recipe
    for line in starts:
        assert "--dashboard-address 127.0.0.1" in line or "--no-dashboard" in line, line


def test_the_quality_scale_is_spelled_out_once():
    """The level words and rated dimensions live in pipeline/levels.py; every other
    module imports them (three copies were kept equal by hand)."""
    spelled = {'"bad", "poor", "fair", "good", "excellent"', '"colour", "noise", "artifact"'}
    found = sorted(
        str(path.relative_to(REPO))
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if any(text in path.read_text() for text in spelled)
    )
    assert found == ["pipeline/levels.py"]


def test_exit_codes_are_named_in_qfeat_errors():
    """Every exit code a command ends with is a name from qfeat/errors.py, never a
    literal number (Ctrl-C's 130 was one)."""
    import re

    literal = re.compile(r"(typer\.Exit|sys\.exit|SystemExit)\((code=)?\d")
    found = [
        str(path.relative_to(REPO))
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if literal.search(path.read_text())
    ]
    assert found == []


def _positional_heavy(folders: tuple[str, ...]) -> list[str]:
    """Functions with more than 6 positional parameters (self/cls not counted), except
    typer commands (typer passes their options by keyword)."""
    offenders = []
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                commands = [
                    d
                    for d in node.decorator_list
                    if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command"
                ]
                args = [a.arg for a in node.args.posonlyargs + node.args.args]
                if len([a for a in args if a not in ("self", "cls")]) > 6 and not commands:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    return offenders


def test_no_function_takes_more_than_six_positional_parameters():
    """Issue 35: long positional signatures (run_shard's ten) invite swapped arguments;
    past six, parameters are keyword-only or one typed object."""
    assert _positional_heavy(("trainers", "cli")) == []


def test_no_module_is_over_400_lines():
    sizes = {
        str(p.relative_to(REPO)): len(p.read_text().splitlines())
        for folder in ("trainers", "cli", "qfeat")
        for p in (REPO / folder).rglob("*.py")
    }
    assert {p: n for p, n in sizes.items() if n > 400} == {}
