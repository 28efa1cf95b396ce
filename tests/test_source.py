"""One parser decides where every model's weights come from."""

from __future__ import annotations

import pytest

from qfeat.errors import DatasetError
from qfeat.pipeline.models.source import looks_like_hub_id, parse_source, require_file


def test_kinds(tmp_path):
    (weights := tmp_path / "w.pth").write_bytes(b"x")
    assert parse_source("random").kind == "random"
    assert parse_source("").kind == parse_source(None).kind == "none"
    assert parse_source(str(weights)).kind == "file" and parse_source(str(weights)).path == weights
    assert parse_source(str(tmp_path)).kind == "folder"
    assert parse_source(str(tmp_path / "gone.pth")).kind == "missing"
    # a hub id only where hub models are accepted, and never when a local path exists
    assert parse_source("Qwen/Qwen2.5-VL-7B-Instruct").kind == "missing"
    assert parse_source("Qwen/Qwen2.5-VL-7B-Instruct", allow_hub=True).kind == "hub"
    for not_hub in ("../x/y", "~/m", "/abs/path", "not a model/at all", "qwen-vl", "a/b/c"):
        assert not looks_like_hub_id(not_hub), not_hub
        assert parse_source(not_hub, allow_hub=True).kind == "missing", not_hub


def test_require_file_names_the_setting(tmp_path):
    (weights := tmp_path / "w.bin").write_bytes(b"x")
    assert require_file(parse_source(str(weights)), "clip.pretrained", "clip", "w.bin") == weights
    for text in ("", str(tmp_path), "random", str(tmp_path / "nope.bin")):
        with pytest.raises(DatasetError, match=r"--set text.pretrained=/path/open_clip\.bin"):
            require_file(parse_source(text), "text.pretrained", "text model x", "open_clip.bin")
