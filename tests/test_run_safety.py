"""Issue 40.6: a run folder is locked while `train` writes it, a damaged split
checkpoint is trained again by a rerun, and SIGTERM is handled like Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
from types import SimpleNamespace

import pytest
import torch
import typer
from filelock import FileLock
from safetensors.torch import save_file

from qfeat.trainers.protocol import finished_split
from qfeat.trainers.runfolder import RunFolder


def test_a_second_train_with_the_same_run_is_refused_in_one_line(tmp_path, qfeat):
    runs = tmp_path / "runs"
    (runs / "same").mkdir(parents=True)
    with FileLock(str(runs / "same" / ".train.lock")):  # what the first `qfeat train` holds
        result = qfeat("train", "rsa", "demo", "--cache-dir", str(tmp_path / "cache"),
                       "--runs-dir", str(runs), "--run", "same")  # fmt: skip
    assert result.exit_code == 1
    assert "another `qfeat train` is writing run same" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_sigterm_during_training_exits_143_with_the_resume_hint(tmp_path, capsys):
    from qfeat.cli.train import resumable

    request = SimpleNamespace(run="r1", dataset="demo",
                              folder=lambda trainer: RunFolder(tmp_path / "r1"))  # fmt: skip
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(typer.Exit) as stopped, resumable("rsa", request):
        os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.exit_code == 143
    out = capsys.readouterr().out
    assert "terminated: run r1 keeps its finished splits" in out
    assert "qfeat train rsa demo --run r1" in out
    assert signal.getsignal(signal.SIGTERM) is before  # restored
    with resumable("rsa", request):  # the lock was released
        pass


def test_a_truncated_split_checkpoint_is_not_finished(tmp_path):
    (tmp_path / "split-00.json").write_text(json.dumps({"records": [], "seconds": 1.0}))
    checkpoint = tmp_path / "split-00.safetensors"
    save_file({"w": torch.zeros(256)}, checkpoint)
    assert finished_split(tmp_path, 0) == {"records": [], "seconds": 1.0}
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    assert finished_split(tmp_path, 0) is None  # so a rerun trains split 0 again
