"""`qfeat features` under faults that really happen: a shard that always crashes, a
killed driver, a second run started beside the first, a killed worker of a real
cluster. Each ends with every item stored once and the same command completing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qfeat.cache.reader import open_stage
from tests import faults
from tests.runner_helpers import (
    BIN,
    FRAMES,
    REPO,
    done_count,
    fault_env,
    faults_here,
    features_args,
    free_port,
    kill_group,
    markers,
    wait_for,
)


@pytest.fixture(scope="module")
def video_root(demo_video_data) -> Path:
    return demo_video_data


@pytest.mark.slow
def test_shard_that_always_crashes_is_reported_then_retried(
    qfeat, video_root, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    with faults_here(monkeypatch, crash="videos/ball_noise1.mp4"):  # in shard 1
        result = qfeat(*features_args(video_root, cache, *FRAMES))
    assert result.exit_code == 1
    assert "frames shard 00001 (first item videos/" in result.output
    assert "the worker process died each time it ran the shard (3 tries)" in result.output
    stage = open_stage(cache, "demo-video", "frames", _only_fingerprint(cache))
    assert sorted(stage.markers) == [0, 2, 3, 4, 5]
    monkeypatch.delenv(faults.CRASH)
    before = markers(stage.dir)
    again = qfeat(*features_args(video_root, cache, *FRAMES))
    assert again.exit_code == 0 and "5 shards already done" in again.output
    after = markers(stage.dir)
    assert {k: v for k, v in after.items() if k in before} == before
    assert len(open_stage(cache, "demo-video", "frames").table()) == 24


def _only_fingerprint(cache: Path) -> str:
    (folder,) = (cache / "demo-video" / "frames").iterdir()
    return folder.name


@pytest.mark.slow
def test_driver_killed_mid_run_then_same_command_completes(video_root, tmp_path):
    cache = tmp_path / "cache"
    args = [sys.executable, "-m", "qfeat", *features_args(video_root, cache, *FRAMES)]
    env = {**os.environ, **fault_env(delay=1.0)}
    driver = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: done_count(cache) >= 2)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        kill_group(driver.pid)
    folder = next((cache / "demo-video" / "frames").iterdir())
    before = markers(folder)
    assert 2 <= len(before) < 6
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(before)} shards already done" in done.stdout
    after = markers(folder)
    assert {k: after[k] for k in before} == before  # finished shards were not recomputed
    table = open_stage(cache, "demo-video", "frames").table()
    assert len(table) == 24 and table["item_id"].is_unique


@pytest.mark.slow
def test_a_second_run_on_the_same_dataset_is_refused_while_the_first_runs(
    qfeat, video_root, tmp_path
):
    """Enter pressed twice: the second `qfeat features` says so at once (exit 1); the
    first finishes; every item is stored once and the cache verifies clean."""
    cache = tmp_path / "cache"
    args = [sys.executable, "-m", "qfeat", *features_args(video_root, cache, *FRAMES)]
    env = {**os.environ, **fault_env(delay=1.0)}
    first = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: done_count(cache) >= 1)
        second = qfeat(*features_args(video_root, cache, *FRAMES))
        assert second.exit_code == 1
        assert "another `qfeat features` run is computing demo-video" in second.output
        output, _ = first.communicate(timeout=180)
        assert first.returncode == 0, output
    finally:
        kill_group(first.pid)
    table = open_stage(cache, "demo-video", "frames").table()
    assert len(table) == 24 and table["item_id"].is_unique
    verify = qfeat("cache", "verify", "--cache-dir", str(cache))
    assert verify.exit_code == 0, verify.output
    again = qfeat(*features_args(video_root, cache, *FRAMES))  # the lock was released
    assert again.exit_code == 0 and "6 shards already done" in again.output


@pytest.mark.slow
def test_real_cluster_survives_a_killed_worker(video_root, tmp_path):
    env = {**os.environ, **fault_env(delay=0.7)}
    with external_cluster(2, env) as (address, scheduler, workers):
        cache = tmp_path / "cache"
        args = [sys.executable, "-m", "qfeat", *features_args(video_root, cache)[:-2],
                *FRAMES, "--scheduler", address]  # fmt: skip
        driver = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        workers.append(driver)
        wait_for(lambda: done_count(cache) >= 1)
        workers[0].kill()
        output, _ = driver.communicate(timeout=180)
        assert driver.returncode == 0, output
    table = open_stage(cache, "demo-video", "frames").table()
    assert len(table) == 24 and table["item_id"].is_unique and (table["status"] == "ok").all()


@pytest.mark.slow
def test_scheduler_killed_mid_run_ends_with_a_clear_error(video_root, tmp_path):
    """The scheduler dies: the driver stops (no hang) with a message naming what went
    away; the same command against a new scheduler finishes the stage."""
    env = {**os.environ, **fault_env(delay=1.0)}
    cache = tmp_path / "cache"
    with external_cluster(1, env) as (address, scheduler, workers):
        args = [sys.executable, "-m", "qfeat", *features_args(video_root, cache)[:-2],
                *FRAMES, "--scheduler", address]  # fmt: skip
        driver = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        workers.append(driver)
        wait_for(lambda: done_count(cache) >= 1)
        scheduler.kill()
        output, _ = driver.communicate(timeout=120)
    assert driver.returncode == 1, output
    assert "scheduler" in output and "Traceback" not in output, output[-3000:]
    kept = done_count(cache)
    with external_cluster(1, env) as (address, _, _):
        again = subprocess.run([*args[:-1], address], cwd=REPO, env=env, text=True,
                               capture_output=True, timeout=180)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{kept} shards already done" in again.stdout


@contextlib.contextmanager
def external_cluster(n_workers: int, env: dict):
    """``(address, scheduler, workers)`` of a `dask scheduler` and ``n_workers`` plain
    workers on loopback; every process (and any appended to ``workers``) killed after."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": REPO, "env": env}
    scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], **quiet)  # fmt: skip
    worker = [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny",
              "--no-dashboard", "--host", "127.0.0.1"]  # fmt: skip
    workers = [subprocess.Popen(worker, **quiet) for _ in range(n_workers)]
    try:
        yield address, scheduler, workers
    finally:
        for p in [scheduler, *workers]:
            p.kill()
            p.wait()


@pytest.mark.slow
def test_ctrl_c_ends_features_with_one_line_and_the_same_command_goes_on(
    qfeat, video_root, tmp_path
):
    """SIGINT to the whole process group (what Ctrl-C in a terminal sends): exit 130 with
    one line, no traceback, no worker process left behind; the rerun keeps the shards."""
    import psutil

    cache = tmp_path / "cache"
    args = [sys.executable, "-m", "qfeat", *features_args(video_root, cache, *FRAMES)]
    env = {**os.environ, **fault_env(delay=1.0)}
    driver = subprocess.Popen(args, cwd=REPO, env=env, start_new_session=True, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        wait_for(lambda: done_count(cache) >= 1)
        children = psutil.Process(driver.pid).children(recursive=True)
        os.killpg(driver.pid, signal.SIGINT)
        out, err = driver.communicate(timeout=90)
        wait_for(lambda: not any(c.is_running() and c.status() != "zombie" for c in children))
    finally:
        kill_group(driver.pid)
    assert driver.returncode == 130, out + err
    assert "interrupted: finished shards are kept" in err
    assert "Traceback" not in out + err, err[-3000:]
    assert children  # the embedded cluster's processes existed, and are gone
    kept = len(markers(next((cache / "demo-video" / "frames").iterdir())))
    again = qfeat(*features_args(video_root, cache, *FRAMES))
    assert again.exit_code == 0 and f"{kept} shards already done" in again.output
