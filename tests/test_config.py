"""Presets, --set overrides, --option parsing and the QFEAT_* locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfeat.pipeline import paths
from qfeat.pipeline.config import (
    apply_overrides,
    default_preset,
    list_presets,
    load_preset,
    parse_options,
    resolve_config,
)
from qfeat.pipeline.datasets.base import OptionError


def test_builtin_presets_have_the_same_fields():
    assert {"tiny", "paper"} <= set(list_presets())
    tiny, paper = load_preset("tiny"), load_preset("paper")

    def keys(d, p=""):
        return {p + k for k, v in d.items() if not isinstance(v, dict)} | {
            x for k, v in d.items() if isinstance(v, dict) for x in keys(v, p + k + ".")
        }

    assert keys(tiny) == keys(paper)
    assert paper["regions"]["points_per_side"] == 32
    assert paper["regions"]["pred_iou_thresh"] == 0.88
    assert paper["regions"]["stability_score_thresh"] == 0.95
    assert paper["clip"]["model"] == "PE-Core-L-14-336"
    assert paper["frames"]["num_frames"] == 8


def test_default_preset_per_dataset():
    assert default_preset("demo") == "tiny"
    assert default_preset("demo-video") == "tiny"
    assert default_preset("koniq") == "paper"


def test_set_overrides_typed_values():
    cfg = apply_overrides(
        load_preset("tiny"),
        [
            "frames.num_frames=16",
            "regions.min_area_frac=0",
            "frames.strategy=uniform",
            "describe.model=/models/qwen 7b",
        ],
    )
    assert cfg["frames"]["num_frames"] == 16
    assert cfg["regions"]["min_area_frac"] == 0.0 and isinstance(
        cfg["regions"]["min_area_frac"], float
    )
    assert cfg["frames"]["strategy"] == "uniform"
    assert cfg["describe"]["model"] == "/models/qwen 7b"
    assert load_preset("tiny")["frames"]["num_frames"] == 8  # the preset itself is untouched


@pytest.mark.parametrize(
    "bad, message",
    [
        ("frames.num_frame=4", "did you mean frames.num_frames"),
        ("frames.num_frames=many", "expected a int"),
        ("frames=3", "no field"),
        ("frames.num_frames", "key.path=value"),
    ],
)
def test_bad_overrides_are_usage_errors(bad, message):
    with pytest.raises(OptionError, match=message):
        apply_overrides(load_preset("tiny"), [bad])


def test_preset_from_file(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text("seed = 3\n[frames]\nnum_frames = 4\n")
    cfg = resolve_config(str(f), ["seed=5"])
    assert cfg["seed"] == 5 and cfg["frames"]["num_frames"] == 4 and cfg["preset"] == str(f)
    with pytest.raises(OptionError, match="unknown preset"):
        load_preset("nope")


def test_parse_options():
    assert parse_options(["a=1", "b = x=y", "a=2"]) == {"a": "2", "b": "x=y"}
    with pytest.raises(OptionError):
        parse_options(["novalue"])


def test_locations_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("QFEAT_DATA_ROOT", str(tmp_path / "d"))
    monkeypatch.delenv("QFEAT_CACHE_DIR")
    assert paths.dataset_root("koniq") == tmp_path / "d" / "koniq"
    assert paths.dataset_root("koniq", "/x/k") == Path("/x/k")
    # relative locations come back absolute, taken from the current directory
    monkeypatch.chdir(tmp_path)
    assert paths.cache_dir() == tmp_path / "qfeat-cache"
    assert paths.runs_dir("elsewhere") == tmp_path / "elsewhere"
