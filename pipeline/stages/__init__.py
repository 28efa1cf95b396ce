"""The stage registry: every other table of stages is derived from the classes here.

A :class:`Stage` subclass declares what the rest of the code needs (``name``,
``modality``, ``upstream``, ``arrays``, its ``settings`` class, its ``help`` line, its
weights facts); this module holds the one list of stage classes, and from it:

- :func:`stage_settings`: the settings class of each preset section (``--set``, presets),
- :func:`run_order`: a modality's stages in dependency order (upstream first, then the
  order of :data:`STAGES`), e.g. images: regions -> describe -> text, backbone; videos:
  frames -> clip,
- the weights table (:mod:`qfeat.pipeline.models.weights_table`) and ``features --help``.

Adding a stage is its module plus one line in :data:`STAGES` (docs/architecture.md).
"""

from __future__ import annotations

from qfeat.errors import ItemError
from qfeat.pipeline.settings import Settings
from qfeat.pipeline.stages.backbone import BackboneStage
from qfeat.pipeline.stages.base import Stage
from qfeat.pipeline.stages.clip import ClipStage
from qfeat.pipeline.stages.describe import DescribeStage
from qfeat.pipeline.stages.frames import FramesStage
from qfeat.pipeline.stages.regions import RegionsStage
from qfeat.pipeline.stages.text import TextStage

STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (RegionsStage, DescribeStage, TextStage, BackboneStage, FramesStage, ClipStage)
}
MODALITIES = ("image", "video")

__all__ = [
    "MODALITIES",
    "STAGES",
    "ItemError",
    "Stage",
    "get_stage",
    "run_order",
    "stage_help",
    "stage_settings",
]


def run_order(modality: str) -> tuple[str, ...]:
    """The stages of ``modality`` in dependency order: a stage comes after its upstream
    stages, otherwise in the order of :data:`STAGES` (a stable topological sort)."""
    mine = [name for name, cls in STAGES.items() if cls.modality == modality]
    done: list[str] = []
    while len(done) < len(mine):
        ready = [n for n in mine if n not in done and all(u in done for u in STAGES[n].upstream)]
        if not ready:
            stuck = [n for n in mine if n not in done]
            raise RuntimeError(f"stages {', '.join(stuck)}: upstream missing or circular")
        done.append(ready[0])
    return tuple(done)


def stage_settings() -> dict[str, type[Settings]]:
    """Preset section -> settings class, one per stage (what presets and ``--set`` of a
    stage accept, with every default)."""
    return {cls.settings.section: cls.settings for cls in STAGES.values()}


def stage_help() -> str:
    """One line per modality: its stages in run order with each stage's help line."""
    return "; ".join(
        f"{modality}s: "
        + ", ".join(f"{name} ({STAGES[name].help})" for name in run_order(modality))
        for modality in MODALITIES
    )


def get_stage(name: str) -> type[Stage]:
    return STAGES[name]
