"""The stage registry, per modality in dependency order.

Image datasets: regions -> describe -> text, and backbone; video datasets: frames -> clip.
Stages not implemented yet are listed in PLANNED and reported as such by the runner.
"""

from __future__ import annotations

from qfeat.errors import ItemError
from qfeat.pipeline.stages.backbone import BackboneStage
from qfeat.pipeline.stages.base import Stage
from qfeat.pipeline.stages.clip import ClipStage
from qfeat.pipeline.stages.describe import DescribeStage
from qfeat.pipeline.stages.frames import FramesStage
from qfeat.pipeline.stages.regions import RegionsStage
from qfeat.pipeline.stages.text import TextStage

STAGES: dict[str, type[Stage]] = {
    cls.name: cls
    for cls in (FramesStage, ClipStage, RegionsStage, DescribeStage, TextStage, BackboneStage)
}
ORDER = {
    "image": ("regions", "describe", "text", "backbone"),
    "video": ("frames", "clip"),
}
PLANNED: set[str] = set()

__all__ = ["ORDER", "PLANNED", "STAGES", "ItemError", "Stage", "available", "get_stage"]


def available(modality: str) -> list[str]:
    """Implemented stages of a modality (whose upstream stages exist too), in order."""
    return [
        s for s in ORDER[modality] if s in STAGES and all(u in STAGES for u in STAGES[s].upstream)
    ]


def get_stage(name: str) -> type[Stage]:
    return STAGES[name]
