"""Issue 40.7: `--workers` is capped, in one line, where memory cannot hold that many
workers (64 workers on 2 cores ended in KilledWorker and 113 lines of tracebacks)."""

from __future__ import annotations

from qfeat.pipeline import memory
from qfeat.pipeline.memory import WORKER_BASE_BYTES, cap_workers, worker_need

GIB = 1 << 30


def test_workers_beyond_memory_are_capped_with_one_line():
    n, line = cap_workers(64, 2 * GIB, memory=24 * GIB)
    assert n == 12 and "--workers 64" in line and "running 12" in line and "\n" not in line
    assert cap_workers(4, 2 * GIB, memory=24 * GIB) == (4, None)
    assert cap_workers(3, 8 * GIB, memory=4 * GIB)[0] == 1  # never fewer than one


def test_a_workers_need_counts_the_weights_files_it_loads(tmp_path):
    weights = tmp_path / "sam.pth"
    weights.write_bytes(b"\0" * 4096)
    config = {"regions": {"checkpoint": str(weights), "points": 8}, "text": {"model": "tiny"}}
    assert worker_need(config, ["regions", "text"]) == WORKER_BASE_BYTES + 4096
    assert worker_need(config, ["text"]) == WORKER_BASE_BYTES


def test_features_runs_the_capped_count(demo_image_data, tmp_path, qfeat, monkeypatch):
    from qfeat.cli import features

    seen = {}

    def run(plan, progress):
        seen["plan"] = plan
        return []

    monkeypatch.setattr(memory, "machine_memory", lambda: 3 * GIB)
    monkeypatch.setattr(features, "run", run)
    result = qfeat("features", "demo", "--root", str(demo_image_data), "--cache-dir",
                   str(tmp_path / "c"), "--workers", "64", "--stages", "backbone")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--workers 64: this machine's 3.0 GiB hold about 2 worker(s)" in result.output
    assert seen["plan"].request.workers == 2
    assert "compete for the CPUs" not in result.output  # one line, not two
