"""Issue 40.5: user-supplied text printed to a terminal is escaped in every command that
prints item ids or paths; CSVs read back identically; weights are judged by content and
no message passes on torch's advice to load with weights_only=False."""

from __future__ import annotations

import os
import pickle
import shutil

import pandas as pd
import pytest
import torch

from qfeat.errors import DatasetError, without_unsafe_advice
from qfeat.pipeline.models.source import require_plain_weights
from tests.fixtures.media import write_csv, write_media

HOSTILE = "evil\x1b[2J\x1b]0;owned\x07\rname"
RAW = ("\x1b", "\x07", "\r")


def _clean(output: str) -> None:
    assert not [c for c in RAW if c in output], repr(output)
    assert "evil" in output  # named, its control characters shown as text


def test_predict_escapes_a_hostile_file_name(rsa_run, demo_images, tmp_path, qfeat):
    image = tmp_path / f"{HOSTILE}.png"
    shutil.copy(next((demo_images.data / "images").glob("*.png")), image)
    result = qfeat("predict", str(rsa_run), str(tmp_path), "--device", "cpu")  # a folder: no glob
    assert result.exit_code == 0, result.output
    _clean(result.output)


def test_datasets_check_features_and_weights_escape_hostile_names(tmp_path, qfeat):
    root = tmp_path / "set"
    write_media(root / "ok.png")
    write_media(root / f"{HOSTILE}.png")
    write_csv(root / "scores.csv", ["file", "mos"], [["ok.png", 1.0], [f"{HOSTILE}.png", "x"]])
    opts = ["--option", "file=scores.csv", "--option", "path_col=file", "--option",
            "score_col=mos"]  # fmt: skip
    checked = qfeat("datasets", "check", "csv", "--root", str(root), *opts, "--no-decode")
    run = qfeat("features", "csv", "--root", str(root), "--cache-dir", str(tmp_path / "c"),
                *opts, "--preset", "tiny", "--stages", "backbone")  # fmt: skip
    weights = qfeat("weights", "--preset", "tiny", "--set",
                    f"backbone.weights={root / HOSTILE}.png")  # fmt: skip
    assert checked.exit_code == 1 and run.exit_code == 1
    for result in (checked, run, weights):
        _clean(result.output)


def test_runs_and_cache_commands_escape_hostile_folder_names(rsa_run, tmp_path, qfeat):
    runs = tmp_path / f"runs{HOSTILE}"
    shutil.copytree(rsa_run, runs / f"run{HOSTILE}")
    listed = qfeat("runs", "--runs-dir", str(runs))
    table = qfeat("table", f"run{HOSTILE}", "--runs-dir", str(runs))
    empty = qfeat("cache", "ls", "--cache-dir", str(tmp_path / f"cache{HOSTILE}"))
    for result in (listed, table, empty):
        assert result.exit_code == 0, result.output
        _clean(result.output)


def test_predictions_csv_reads_back_identically(rsa_run, tmp_path):
    from qfeat.trainers.runfolder import PREDICTIONS, RunFolder, write_predictions

    copy = tmp_path / "run"
    shutil.copytree(rsa_run, copy)
    frame = RunFolder(copy).predictions.copy()
    frame.loc[0, "item_id"] = 'a\rb,"c"\n.png'
    write_predictions(frame, copy / PREDICTIONS)
    back = RunFolder(copy).predictions
    pd.testing.assert_frame_equal(back.reset_index(drop=True), frame.reset_index(drop=True))
    frame.loc[0, "item_id"] = "a\rb.png"
    frame.to_csv(copy / PREDICTIONS, index=False)  # '\r' unquoted, as qfeat once wrote it
    with pytest.raises(DatasetError, match="malformed rows.*train the run again"):
        _ = RunFolder(copy).predictions  # one line, not a TypeError in predict


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("name", ["weights", "weights.safetensors", "weights.pth"])
def test_a_raw_pickle_is_refused_by_content_whatever_its_name(tmp_path, name):
    path = tmp_path / name
    with open(path, "wb") as f:
        pickle.dump({"w": torch.zeros(2), "x": _Payload(tmp_path / "pwned")}, f)
    with pytest.raises(DatasetError) as caught:
        require_plain_weights(path, "backbone.weights")
    message = str(caught.value)
    assert "backbone.weights=" in message and "False" not in message
    assert "trusted source" not in message
    assert not (tmp_path / "pwned").exists()


def test_safetensors_content_under_another_name_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "w.safetensors")
    require_plain_weights(tmp_path / "w.safetensors", "clip.pretrained")  # no error
    shutil.copy(tmp_path / "w.safetensors", tmp_path / "w.pth")
    with pytest.raises(DatasetError, match="safetensors file under another name"):
        require_plain_weights(tmp_path / "w.pth", "clip.pretrained")


def test_torch_advice_is_stripped_from_any_message():
    torch_text = (
        "Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` "
        "will likely succeed, but it can result in arbitrary code execution. Do it only if "
        "you got the file from a trusted source.\n\nUnsupported operand 149\n"
    )
    cleaned = without_unsafe_advice(torch_text)
    assert "Unsupported operand 149" in cleaned and "False" not in cleaned
    assert without_unsafe_advice("line one\nline two") == "line one\nline two"
