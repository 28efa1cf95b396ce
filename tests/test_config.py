"""Presets, --set overrides, --option parsing and the QFEAT_* locations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from qfeat.cache.fingerprint import build_manifest
from qfeat.errors import OptionError
from qfeat.pipeline import paths
from qfeat.pipeline.config import (
    apply_overrides,
    default_preset,
    list_presets,
    load_preset,
    parse_options,
    resolve_config,
)
from qfeat.pipeline.stages import stage_settings
from qfeat.pipeline.stages.settings import DescribeSettings, FramesSettings
from qfeat.trainers.settings import RSASettings, SCMASettings, trainer_settings


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
        ("frames.num_frames=many", "frames.num_frames: expected an integer like 8"),
        ("frames=3", "no setting 'frames'"),
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


# -- typed settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, message",
    [
        ("frames.num_frame=4", "did you mean frames.num_frames"),
        ("frames.num_frames=many", "frames.num_frames: expected an integer like 8"),
        ("frames.num_frames=0", r"frames.num_frames = 0 is invalid: it must be a number in"),
        ("frames.num_frames=100000", "frames.num_frames = 100000 is invalid"),
        ("frames.lowres=0", "frames.lowres = 0 is invalid"),
        ("frames.strategy=best", "one of uniform, random"),
        ("regions.pred_iou_thresh=2.0", r"regions.pred_iou_thresh = 2.0 is invalid.*\[0.0, 1.0\]"),
        ("regions.model=vit_x", "regions.model = 'vit_x' is invalid"),
        ("describe.batched=true", "there is no setting 'describe.batched'"),
        ("describe.margin=-1", "describe.margin = -1.0 is invalid"),
        ("regions.batched=maybe", "expected true or false"),
    ],
)
def test_typed_settings_refuse_bad_values_as_usage_errors(bad, message):
    with pytest.raises(OptionError, match=message):
        resolve_config("tiny", [bad], stage_settings())


def test_every_default_is_in_the_resolved_config():
    """A setting the preset does not name (describe.margin) is still in the resolved
    section, so it reaches the fingerprint, and --set accepts it."""
    cfg = resolve_config("tiny", ["describe.margin=0.2"], stage_settings())
    for name, cls in stage_settings().items():
        assert set(cfg[name]) == set(cls.field_names())
    assert cfg["describe"]["margin"] == 0.2 and cfg["describe"]["min_new_tokens"] == 0
    assert "margin" not in load_preset("tiny")["describe"]


def test_changing_a_default_changes_the_fingerprint():
    @dataclass(frozen=True)
    class WiderMargin(DescribeSettings):
        margin: float = 0.3

    def fp(sections):
        config = resolve_config("tiny", [], sections)["describe"]
        return build_manifest(
            stage="describe", stage_version=1, config=config, model={"name": "tiny"},
            upstream={}, dataset={"adapter": "demo"}, item_ids=["a"], shard_size=1,
        )["fingerprint"]  # fmt: skip

    assert fp(stage_settings()) != fp({**stage_settings(), "describe": WiderMargin})


def test_preset_may_leave_a_section_out_and_typos_in_presets_fail(tmp_path):
    short = tmp_path / "short.toml"
    short.write_text("seed = 1\n[regions]\nmodel = 'tiny'\n")
    cfg = resolve_config(str(short), [], stage_settings())
    assert cfg["frames"] == FramesSettings().as_dict() and cfg["regions"]["model"] == "tiny"
    typo = tmp_path / "typo.toml"
    typo.write_text("[frames]\nnum_frame = 4\n")
    with pytest.raises(OptionError, match="frames has no setting 'num_frame'.*num_frames"):
        resolve_config(str(typo), [], stage_settings())
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[frames]\nnum_frames = 'eight'\n")
    with pytest.raises(OptionError, match="frames.num_frames: expected an integer"):
        resolve_config(str(wrong), [], stage_settings())


def test_trainer_settings_are_typed_too():
    tcfg = trainer_settings(SCMASettings, "tiny", ["scma.r=4"], epochs=3)
    assert tcfg["r"] == 4 and tcfg["epochs"] == 3 and set(tcfg) == set(SCMASettings.field_names())
    assert trainer_settings(RSASettings, "paper", [])["hidden"] == RSASettings().hidden
    for bad in ("scma.batch_size=0", "scma.lr=0", "scma.depth=3"):
        with pytest.raises(OptionError):
            trainer_settings(SCMASettings, "tiny", [bad])
    with pytest.raises(OptionError, match="scma.epochs = 0"):
        trainer_settings(SCMASettings, "tiny", [], epochs=0)


def test_paper_preset_equals_the_defaults():
    """The paper preset's values are the classes' defaults (so leaving a section out of a
    preset means the paper's setting)."""
    paper = load_preset("paper")
    for name, cls in {**stage_settings(), "rsa": RSASettings, "scma": SCMASettings}.items():
        assert cls.build(paper[name]) == cls(), name
