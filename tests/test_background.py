"""The suite's background process (tests/background.py): a marked test that fails in
the child fails the main session with its text; a run of marked tests alone stays in
one process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CONFTEST = """
from tests import background


def pytest_configure(config):
    config.addinivalue_line("markers", "background: in the second process")
    config.pluginmanager.register(background, "qfeat-background")
"""

MARKED = """
import os
import time
import pytest

pytestmark = pytest.mark.background


def test_child_leaves_one_cpu_to_the_main_process():
    from qfeat.pipeline.threads import available_cpus

    threads = str(max(1, available_cpus() - 1))
    assert os.environ.get("QFEAT_THREADS") == threads and os.environ.get("QFEAT_TEST_CHILD")


def test_fails_in_the_child():
    assert 1 == 2, "the child's own words"


def test_skipped_in_the_child():
    pytest.skip("nothing to do here")


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


def test_setup_fails_in_the_child(broken):
    pass


@pytest.mark.parametrize("x", [1, 2])
def test_parametrized(x):
    assert x == 1


@pytest.fixture
def slow_setup():
    time.sleep(1.0)


def test_takes_a_second_to_set_up(slow_setup):
    pass
"""


def _pytest(folder: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for name in ("QFEAT_TEST_CHILD", "QFEAT_TEST_INLINE", "QFEAT_THREADS"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout + done.stderr


def test_marked_tests_run_in_the_child_and_report_here(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_marked.py").write_text(MARKED)
    (tmp_path / "test_plain.py").write_text("def test_here():\n    pass\n")
    out = _pytest(tmp_path, "--durations=0", "--durations-min=0")
    assert "3 failed, 4 passed, 1 skipped" in out, out
    assert "PASSED test_marked.py::test_child_leaves_one_cpu_to_the_main_process" in out
    assert "FAILED test_marked.py::test_fails_in_the_child" in out
    assert "the child's own words" in out and "[call, in the background process]" in out
    assert "FAILED test_marked.py::test_setup_fails_in_the_child" in out
    assert "fixture broke" in out and "[setup, in the background process]" in out
    assert "FAILED test_marked.py::test_parametrized[2]" in out
    assert "PASSED test_marked.py::test_parametrized[1]" in out
    assert "SKIPPED [1] " in out and "nothing to do here" in out
    # --durations shows each test's own time in the child (setup included), not the
    # time this process waited for the child (charged to the first stand-in before)
    took = {m[1]: float(m[0]) for m in re.findall(r"([0-9.]+)s call +test_marked\.py::(\w+)", out)}
    assert took["test_takes_a_second_to_set_up"] >= 1.0, out
    assert (
        took["test_child_leaves_one_cpu_to_the_main_process"]
        < took["test_takes_a_second_to_set_up"]
    )


def test_marked_tests_alone_run_in_this_process(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_marked.py").write_text(MARKED)
    out = _pytest(tmp_path, "test_marked.py::test_child_leaves_one_cpu_to_the_main_process")
    assert "1 failed" in out and "in the background process" not in out, out


def test_the_child_gets_every_cpu_but_one_unless_threads_were_chosen(tmp_path):
    from tests.background import child_env

    results = tmp_path / "results.jsonl"
    threads = {cpus: child_env({}, results, cpus)["QFEAT_THREADS"] for cpus in (1, 2, 4, 16)}
    assert threads == {1: "1", 2: "1", 4: "3", 16: "15"}
    chosen = child_env({"QFEAT_THREADS": "2", "HOME": "/h"}, results, 16)
    assert chosen["QFEAT_THREADS"] == "2" and chosen["HOME"] == "/h"
    assert chosen["QFEAT_TEST_CHILD"] == str(results)
