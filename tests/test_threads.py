"""Thread counts from the CPUs the process really has (issue 23.6)."""

from __future__ import annotations

import os

import pytest

from qfeat.errors import OptionError
from qfeat.pipeline.cluster import plan_resources
from qfeat.pipeline.threads import available_cpus, thread_count


def test_the_cgroup_quota_caps_the_affinity(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs
    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == min(affinity, 2)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == affinity
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert available_cpus(v1) == 1


def test_affinity_is_what_counts(monkeypatch):
    from qfeat.pipeline import threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(threads, "_cgroup_limit", lambda root=None: None)
    assert available_cpus() == 1 and thread_count(2) == 1
    assert plan_resources("cpu", None).threads == 1


def test_the_user_sets_them(monkeypatch):
    monkeypatch.setenv("QFEAT_THREADS", "3")
    assert thread_count(1) == 3 and plan_resources("cpu", 2).threads == 3
    monkeypatch.setenv("QFEAT_THREADS", "zero")
    with pytest.raises(OptionError, match="QFEAT_THREADS must be a whole number"):
        thread_count(1)


def test_more_workers_than_cpus_is_warned(monkeypatch):
    """Issue 24.9: `--workers 64` on 2 cores ran silently oversubscribed."""
    from qfeat.cli.features import workers_warning
    from qfeat.pipeline import threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(threads, "_cgroup_limit", lambda root=None: None)
    assert "--workers 64 on 2 available CPU(s)" in workers_warning(64, "cpu", None)
    assert workers_warning(2, "cpu", None) is None
    assert workers_warning(64, "cuda", None) is None  # one worker per GPU is the rule there
    assert workers_warning(64, "cpu", "tcp://h:8786") is None  # another machine's CPUs
