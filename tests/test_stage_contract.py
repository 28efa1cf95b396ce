"""The stage contract: every table of stages is derived from the stage classes."""

from __future__ import annotations

from dataclasses import dataclass

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
