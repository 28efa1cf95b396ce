"""Live scoring for SCMA (Q-CLIP, video) runs: the frames and clip stages on new videos,
then every split's adapter on the clip stage's own outputs.

The clip stage's ``hidden`` (tokens entering block L-K; ``embeddings`` in projection
mode) is exactly what training read from the cache, and the adapters are applied as in
training (:func:`qfeat.trainers.scma_train.tokenizer_for`, :func:`scorer`) to the clip
stage's own CLIP model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qfeat.cache.integrity import damaged, manifest_damage
from qfeat.cache.layout import stage_dir
from qfeat.errors import DatasetError
from qfeat.pipeline.stages import run_order
from qfeat.pipeline.video.reader import VIDEO_EXTENSIONS
from qfeat.trainers.loop import load_trained, predict
from qfeat.trainers.predict_live import LiveStages
from qfeat.trainers.runfolder import RunFolder
from qfeat.trainers.scma import mode_of

BATCH = 8  # videos per adapter forward


def stage_records(run: RunFolder) -> dict[str, Any]:
    """``{"frames": record, "clip": record}`` as :func:`qfeat.trainers.runinfo.stage_record`.

    Runs record them in ``config.json`` ``stages``; for runs made before that, they are
    read from the manifests of the cache folders the run names (while they exist).
    """
    config = run.config
    records = dict(config.stages)
    for name in run_order("video"):
        if name in records:
            continue
        fingerprint = config.fingerprints.get(name, "")
        folder = stage_dir(Path(config.cache_dir or ""), config.dataset, name, fingerprint)
        path = folder / "manifest.json"
        if not fingerprint or not path.is_file():
            raise DatasetError(
                f"{run.name} records no {name} stage config and its cache folder "
                f"({folder}) is gone, so the stage cannot be rerun as trained; retrain the run"
            )
        manifest = json.loads(path.read_text())
        if problem := manifest_damage(folder, manifest):
            raise damaged(folder, problem)
        records[name] = {
            "fingerprint": manifest["fingerprint"],
            "model": manifest["model"],
            "config": manifest["config"],
        }
    return records


class ScmaScorer:
    """Raw adapter outputs of every split for chunks of video files.

    The live clip stage and the adapters share one CLIP model: the stage's, built from
    the run's record (the identity the stage checked is the one training checked, see
    :func:`qfeat.trainers.scma_train.load_clip_for`). The stage runs it with the adapters
    off (:meth:`QCLIP.frozen_clip`), as it ran when it filled the cache; a PE-Core-L is
    then built and held once, not twice."""

    modality = "video"
    extensions = VIDEO_EXTENSIONS

    def __init__(self, run: RunFolder, states: list, device: str):
        from qfeat.trainers.scma import QCLIP
        from qfeat.trainers.scma_train import tokenizer_for

        records = stage_records(run)
        self.live = LiveStages(records, list(run_order("video")), device, run.name)
        self.run_name = run.name
        clip_stage = self.live.stages["clip"]
        clip_cfg = clip_stage.cfg
        self.mode = mode_of(run.config)
        self.device = torch.device(device)
        self.model = QCLIP(
            clip_stage.model,
            tokenizer_for(clip_cfg["model"]),
            k=int(clip_cfg["adapted_blocks"]),
            r=int(run.config.setting("r")),
            mode=self.mode,
        ).to(self.device)
        self.states = states

    def raw(self, items: list[dict[str, Any]]) -> tuple[list[tuple[str, str | None]], np.ndarray]:
        """``(statuses, raw [splits, len(items)])``; NaN where an item failed."""
        from qfeat.trainers.scma_train import feature_array, scorer

        with self.model.frozen_clip():
            outputs, statuses, ok = self.live.run_checked(items)
        raw = np.full((len(self.states), len(items)), np.nan)
        if not len(ok):
            return statuses, raw
        name = feature_array(self.mode)
        features = outputs["clip"].arrays[name]
        score = scorer(self.model, features, ok, self.mode, self.device)
        for split, state in enumerate(self.states):
            load_trained(self.model, state, f"{self.run_name} split {split}")
            raw[split, ok] = predict(self.model, score, np.arange(len(ok)), BATCH)
        return statuses, raw
