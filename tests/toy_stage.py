"""A toy stage, added the way docs/architecture.md says a stage is added: this one
module (its settings class and its Stage class) plus one entry in ``STAGES``, which
tests/test_stage_contract.py makes with monkeypatch. Workers import this module by name
(the task carries the class), so it runs through the runner like any built-in stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from qfeat.pipeline.settings import Settings
from qfeat.pipeline.stages.base import Stage, Upstream


@dataclass(frozen=True)
class ToySettings(Settings):
    section = "toy"
    scale: float = 1.0  # multiplies the frame differences

    def validate(self) -> None:
        self.at_least(0.0, "scale")


class ToyStage(Stage):
    """``curve`` ``[T]``: the frames stage's difference at each chosen frame x scale."""

    name = "toy"
    help = "the frame difference at each chosen frame, scaled"
    modality = "video"
    upstream = ("frames",)
    arrays = ("curve",)
    settings = ToySettings
    uses_torch = False

    def schema(self) -> pa.Schema:
        return pa.schema([("peak", pa.float32())])

    def array_shape(self, name: str, upstream: Upstream) -> tuple[int, ...]:
        return (int(upstream.settings["frames"]["num_frames"]),)

    def process_item(self, item: dict[str, Any], upstream: dict[str, Any]) -> dict[str, Any]:
        row = upstream["frames"]
        curve = np.asarray(row["diff"], np.float32)[np.asarray(row["indices"], int)]
        curve = curve * float(self.cfg["scale"])
        return {"peak": float(curve.max()), "curve": curve}
