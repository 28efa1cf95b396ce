"""Live scoring for probe runs: the run's source stages (``backbone`` for images,
``frames`` then ``clip`` for videos) on new files, pooled as in training
(:func:`qfeat.trainers.probe.pool`), then every split's ridge."""

from __future__ import annotations

from typing import Any

import numpy as np

from qfeat.trainers.predict_live import LiveStages
from qfeat.trainers.probe import SOURCES, apply_state, pool
from qfeat.trainers.registry import run_kind
from qfeat.trainers.runfolder import RunFolder

ORDER = {"image": ["backbone"], "video": ["frames", "clip"]}


class ProbeScorer:
    """Raw ridge outputs of every split for chunks of image or video files."""

    def __init__(self, run: RunFolder, states: list, device: str):
        self.modality, self.extensions = run_kind(run.config, run.path)
        self.live = LiveStages(run.config.stages, ORDER[self.modality], device, run.name)
        self.states = states

    def raw(self, items: list[dict[str, Any]]) -> tuple[list[tuple[str, str | None]], np.ndarray]:
        """``(statuses, raw [splits, len(items)])``; NaN where an item failed."""
        outputs, statuses, ok = self.live.run_checked(items)
        raw = np.full((len(self.states), len(items)), np.nan)
        if not len(ok):
            return statuses, raw
        stage, array, _ = SOURCES[self.modality]
        x = pool(outputs[stage].arrays[array][ok], self.modality)
        for split, state in enumerate(self.states):
            raw[split, ok] = apply_state(state, x)
        return statuses, raw
