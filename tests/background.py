"""Run the compute-bound tests in a second pytest process beside the rest.

Most of the suite keeps one core busy (subprocesses, Dask round trips, small models);
the tests marked ``background`` (the paper preset's real-size models, the SCMA
learnability training) are compute-bound. In a run that selects both kinds, the marked
ones go to a child ``pytest`` started at collection, which leaves one CPU to this
process (``QFEAT_THREADS`` = the available CPUs less one, at least one: one thread on
two cores; a ``QFEAT_THREADS`` the session was started with is kept), while this
process runs the others; each marked test then shows up here, at the end, with the
child's outcome and failure text. Selecting only marked tests, ``--collect-only``, or
``QFEAT_TEST_INLINE=1`` runs them in this process as usual.

The child writes one JSON line per test phase to the file named by
``QFEAT_TEST_CHILD`` (see :func:`pytest_runtest_logreport`); nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfeat.pipeline.threads import available_cpus

CHILD = "QFEAT_TEST_CHILD"
INLINE = "QFEAT_TEST_INLINE"
THREADS = "QFEAT_THREADS"
WAIT_S = 3600


def child_env(environ: dict[str, str], results: Path, cpus: int) -> dict[str, str]:
    """The child's environment on ``cpus`` available CPUs: its torch threads are all but
    the one this process keeps busy (mostly one thread: imports, Dask round trips, small
    models), unless the session was started with its own ``QFEAT_THREADS``."""
    threads = environ.get(THREADS) or str(max(1, cpus - 1))
    return {**environ, CHILD: str(results), THREADS: threads}


class Child:
    """The child pytest process and where its results and output go."""

    def __init__(self, nodeids: list[str], rootdir: Path, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.results = folder / "results.jsonl"
        self.log = folder / "output.txt"
        env = child_env(dict(os.environ), self.results, available_cpus())
        args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "--basetemp", str(folder / "tmp"), *nodeids]  # fmt: skip
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                args, cwd=rootdir, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self._reports: dict[str, list[dict]] | None = None

    def reports(self, nodeid: str) -> list[dict]:
        if self._reports is None:
            try:
                self.process.wait(timeout=WAIT_S)
            except subprocess.TimeoutExpired:
                self.stop()
            self._reports = {}
            if self.results.exists():
                for line in self.results.read_text().splitlines():
                    row = json.loads(line)
                    self._reports.setdefault(row["nodeid"], []).append(row)
        return self._reports.get(nodeid, [])

    def output_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ChildFailure(Exception):
    pass


class BackgroundItem(pytest.Item):
    """Stands for a marked test that the child process runs; reports its outcome."""

    child: Child

    def runtest(self) -> None:
        rows = self.child.reports(self.nodeid)
        if not rows:
            raise ChildFailure(
                f"the background pytest process gave no result for {self.nodeid} "
                f"(exit code {self.child.process.returncode}); its output ends with:\n"
                + self.child.output_tail()
            )
        for row in rows:
            if row["outcome"] == "failed":
                raise ChildFailure(f"[{row['when']}, in the background process]\n{row['text']}")
        skipped = [r for r in rows if r["outcome"] == "skipped"]
        if skipped:
            pytest.skip(skipped[0]["text"].removeprefix("Skipped: "))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ChildFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, self.name


@pytest.hookimpl(trylast=True)  # after -m/-k have deselected
def pytest_collection_modifyitems(config, items: list) -> None:
    """Replace the marked items by stand-ins (moved to the end) and start the child."""
    if os.environ.get(CHILD) or os.environ.get(INLINE) or config.option.collectonly:
        return
    marked = [i for i in items if i.get_closest_marker("background")]
    kept = [i for i in items if not i.get_closest_marker("background")]
    if not marked or not kept:
        return
    folder = config._tmp_path_factory.getbasetemp() / "background"
    child = Child([i.nodeid for i in marked], config.rootpath, folder)
    config.add_cleanup(child.stop)
    stand_ins = []
    for item in marked:
        stand_in = BackgroundItem.from_parent(item.parent, name=item.name)
        stand_in.child = child
        stand_in.own_markers.extend(item.own_markers)  # parametrize, its own marks
        stand_ins.append(stand_in)
    items[:] = kept + stand_ins


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A stand-in's call lasts what the test's phases took in the child, so that
    ``--durations`` shows them, not how long this process waited for the child."""
    outcome = yield
    if isinstance(item, BackgroundItem) and call.when == "call":
        rows = item.child.reports(item.nodeid)
        outcome.get_result().duration = sum(r["duration"] for r in rows)


def pytest_runtest_logreport(report) -> None:
    """In the child: append one phase's outcome and duration to the results file."""
    path = os.environ.get(CHILD)
    if not path:
        return
    if report.outcome == "passed":
        text = ""
    elif report.outcome == "skipped" and isinstance(report.longrepr, tuple):
        text = report.longrepr[2]
    else:
        text = report.longreprtext
    row = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
           "duration": report.duration}  # fmt: skip
    with open(path, "a") as f:
        f.write(json.dumps({**row, "text": text}) + "\n")
