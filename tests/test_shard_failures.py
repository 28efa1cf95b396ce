"""Issue 36 part B: a failed shard is one line (stage, shard, first item, reason), its
traceback in the stage's log inside the cache; a failure that repeats is permanent."""

from __future__ import annotations

import logging

from qfeat.pipeline.failures import LINE_CHARS, ShardFailure, describe, log_path, shard_line
from tests.runner_helpers import FRAMES, faults_here, features_args


def _failed_lines(output: str) -> list[str]:
    return [
        line
        for line in output.splitlines()
        if line.startswith("frames") and "failed " in line and "·" not in line
    ]


def test_a_model_that_cannot_load_is_one_permanent_line(qfeat, demo_video_data, tmp_path,
                                                        monkeypatch):  # fmt: skip
    cache = tmp_path / "cache"
    with faults_here(monkeypatch, load_error="Error(s) in loading state_dict for Sam:"):
        result = qfeat(*features_args(demo_video_data, cache, *FRAMES))
    assert result.exit_code == 1
    out = result.output
    assert "Traceback" not in out and "size mismatch" not in out
    assert all(len(line) <= LINE_CHARS for line in out.splitlines()), out
    # six shards, one reason: said once, as permanent, never "run again"
    said = _failed_lines(out)
    assert said == [
        "frames: all 6 failed shards failed permanently: RuntimeError: Error(s) in loading "
        "state_dict for Sam:"
    ], out
    assert "retry the failed shards" not in out and "fix its cause" in out
    assert "0/6 shards, 6 failed" in out  # not "6/6 shards"
    folder = next((cache / "demo-video" / "frames").iterdir())
    log = log_path(folder)
    assert f"tracebacks in {log}" in out.replace("\n", "")
    text = log.read_text()
    assert "size mismatch for block999.weight" in text and "Traceback" in text


def test_a_failure_that_may_pass_is_retried_and_says_run_again(qfeat, demo_video_data,
                                                               tmp_path, monkeypatch):  # fmt: skip
    cache = tmp_path / "cache"
    with faults_here(monkeypatch, shard_error="CUDA error: an illegal memory access\nmore"):
        result = qfeat(*features_args(demo_video_data, cache, *FRAMES, "--limit", "8"))
    assert result.exit_code == 1
    said = "failed: RuntimeError: CUDA error: an illegal memory access (raised again on each"
    assert said in result.output
    assert "more" not in result.output.split("failed: ")[1].splitlines()[0]
    assert "run the same command again to retry the failed shards" in result.output


def test_lines_name_shard_and_first_item_within_200_characters(tmp_path):
    (tmp_path / "c" / "demo" / ".logs").mkdir(parents=True)
    (tmp_path / "c" / "demo" / ".logs" / "text-abc.log").write_text("Traceback ...")
    long = "RuntimeError: " + "x" * 500
    line = shard_line("regions", ShardFailure(3, long, True, "1024x768/a.jpg"))
    assert line.startswith("regions shard 00003 (first item 1024x768/a.jpg) failed permanently")
    assert len(line) == LINE_CHARS

    class Report:
        stage, path, skipped_reason = "text", tmp_path / "c" / "demo" / "text" / "abc", None
        shards_failed = [ShardFailure(0, "A", False, "x"), ShardFailure(1, "B", True, "y")]

    lines = describe([Report()])
    assert lines[:2] == [
        "text shard 00000 (first item x) failed: A",
        "text shard 00001 (first item y) failed permanently: B",
    ]
    assert lines[2] == f"text: tracebacks in {tmp_path}/c/demo/.logs/text-abc.log"
    assert "fix its cause" in lines[3] and "retry the failed shards" in lines[4]


def test_the_embedded_workers_drop_compute_failed_records():
    from qfeat.pipeline.cluster_servers import NoComputeFailed

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("distributed.worker", logging.ERROR, "", 0, msg, (), None)

    assert not NoComputeFailed().filter(record("Compute Failed\nKey: x\n"))
    assert NoComputeFailed().filter(record("Worker exceeded memory budget"))
