"""The stage contract: every table of stages is derived from the stage classes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from qfeat.pipeline import stages as registry
from qfeat.pipeline.settings import Settings
from qfeat.pipeline.stages import STAGES, Stage, run_order, stage_help, stage_settings


def test_every_stage_declares_the_contract():
    for name, cls in STAGES.items():
        assert cls.name == name and cls.settings.section == name, name
        assert cls.modality in registry.MODALITIES and cls.help and "\n" not in cls.help
        assert all(STAGES[u].modality == cls.modality for u in cls.upstream), name


def test_run_order_puts_upstream_first_then_registration_order():
    assert run_order("image") == ("regions", "describe", "text", "backbone")
    assert run_order("video") == ("frames", "clip")


@dataclass(frozen=True)
class LateSettings(Settings):
    section = "late"
    width: int = 3


class Late(Stage):
    """Registered before its upstream: the order still puts ``clip`` first."""

    name = "late"
    help = "a stage after clip"
    modality = "video"
    upstream = ("clip",)
    settings = LateSettings


def test_a_registered_stage_appears_in_every_derived_table(monkeypatch):
    monkeypatch.setattr(registry, "STAGES", {"late": Late, **STAGES})
    assert run_order("video") == ("frames", "clip", "late")
    assert stage_settings()["late"] is LateSettings
    assert "late (a stage after clip)" in stage_help()


def test_circular_upstream_is_refused(monkeypatch):
    class Loop(Late):
        name = "loop"
        upstream = ("loop",)

    monkeypatch.setattr(registry, "STAGES", {**STAGES, "loop": Loop})
    with pytest.raises(RuntimeError, match="loop"):
        run_order("video")


def test_features_help_lists_the_registered_stages(qfeat, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    out = qfeat("features", "--help").output
    for name, cls in STAGES.items():
        assert f"{name} ({cls.help})" in " ".join(out.split()), name


def test_a_stage_added_as_documented_runs_end_to_end(qfeat, demo_video_data, tmp_path, monkeypatch):
    """docs/architecture.md: a stage is its module plus one line in STAGES. The toy stage
    (tests/toy_stage.py) runs through the runner and Dask workers, its settings are a
    preset section with --set, and it reads its upstream's rows and settings."""
    from qfeat.cache.reader import open_stage
    from tests.toy_stage import ToyStage

    doc = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text()
    assert "## Adding a stage (2 files plus tests)" in doc  # this module + the STAGES entry

    monkeypatch.setattr(registry, "STAGES", {**STAGES, "toy": ToyStage})
    cache = tmp_path / "cache"
    args = ["features", "demo-video", "--root", str(demo_video_data), "--cache-dir",
            str(cache), "--limit", "6", "--shard-size", "4", "--workers", "1",
            "--stages", "frames,toy"]  # fmt: skip
    first = qfeat(*args)
    assert first.exit_code == 0, first.output
    frames, toy = open_stage(cache, "demo-video", "frames"), open_stage(cache, "demo-video", "toy")
    rows = toy.table()
    assert list(rows["status"]) == ["ok"] * 6 and toy.manifest["config"]["scale"] == 1.0
    diff = frames.table()
    want = np.stack(
        [
            np.asarray(d, np.float32)[list(i)]
            for d, i in zip(diff["diff"], diff["indices"], strict=True)
        ]
    )
    curve = toy.array("curve")
    np.testing.assert_allclose(curve, want, rtol=1e-3)
    np.testing.assert_allclose(rows["peak"], want.max(axis=1), rtol=1e-3)
    scaled = qfeat(*args, "--set", "toy.scale=2")
    assert scaled.exit_code == 0, scaled.output
    doubled = open_stage(cache, "demo-video", "toy")
    assert doubled.fingerprint != toy.fingerprint
    np.testing.assert_allclose(doubled.array("curve"), 2 * curve, rtol=1e-3)


def test_the_weights_table_is_derived_from_the_stage_classes(monkeypatch):
    """`qfeat weights` rows come from each stage's weights facts: a stage that declares
    them gets its row, with no table to edit elsewhere."""
    from qfeat.pipeline.models import weights_table
    from qfeat.pipeline.models.weights_facts import Row, WeightsFacts

    class ToyWeights(WeightsFacts):
        def row(self, arch: str) -> Row:
            return Row(f"toy {arch}", "toy.safetensors", "safetensors", "https://example.org")

    @dataclass(frozen=True)
    class FileSettings(Settings):
        section = "filed"
        model: str = "big"
        file: str = ""

    class Filed(Late):
        name = "filed"
        settings = FileSettings
        weights_setting = "file"
        weights = ToyWeights()

    monkeypatch.setattr(registry, "STAGES", {**STAGES, "filed": Filed})
    assert list(weights_table.weights_stages()) == [
        n for n, cls in registry.STAGES.items() if cls.weights is not None
    ]
    assert weights_table.weights_stages()["filed"] == "file"
    cfg = {"filed": {"model": "big", "file": "/nowhere/toy.safetensors"}}
    [need] = weights_table.needs(cfg, ["filed"])
    assert (need.setting, need.architecture, need.official) == (
        "filed.file", "toy big", "toy.safetensors")  # fmt: skip
    assert weights_table.check(need, cfg).status == "missing"
    cfg["filed"]["model"] = "tiny"
    assert weights_table.check(weights_table.needs(cfg, ["filed"])[0], cfg).status == "built in"
