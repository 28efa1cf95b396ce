"""The suite passes whatever a user has exported (issue 36 item 11): conftest removes
HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, COLUMNS and qfeat's own variables first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import neutral_environment

REPO = Path(__file__).resolve().parents[1]
EXPORTED = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "80",
            "QFEAT_CACHE_DIR": "/nonexistent/cache", "QFEAT_HASH_ON_READ_BYTES": "1"}  # fmt: skip


def test_exported_settings_are_removed_and_the_suite_switches_kept():
    environ = {**EXPORTED, "QFEAT_TEST_INLINE": "1", "QFEAT_THREADS": "1", "PATH": "/bin"}
    assert sorted(neutral_environment(environ)) == sorted(EXPORTED)
    assert environ == {"QFEAT_TEST_INLINE": "1", "QFEAT_THREADS": "1", "PATH": "/bin"}


def test_tests_that_set_these_variables_pass_with_them_exported(tmp_path):
    tests = [
        "tests/test_shared_cluster.py::test_a_test_that_changes_the_environment_gets_its_own_cluster",
        "tests/test_environment.py::test_this_session_sees_none",
    ]
    env = {**os.environ, **EXPORTED, "QFEAT_TEST_INLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
         str(tmp_path / "t"), *tests],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    assert "2 passed" in done.stdout


def test_this_session_sees_none():
    assert not (set(EXPORTED) - {"QFEAT_CACHE_DIR"}) & set(os.environ)
    # the isolated_dirs fixture's folder, never the exported one
    assert os.environ["QFEAT_CACHE_DIR"] != EXPORTED["QFEAT_CACHE_DIR"]
