"""Live scoring for RSA (image) runs: the run's image stages on new files, then every
split's head.

The stage outputs become head inputs through the same function the cache loader uses
(:func:`qfeat.trainers.rsa_data.build_rsa_data`), and the head is built and applied as in
training (:func:`qfeat.trainers.rsa_train.build_head`,
:func:`qfeat.trainers.rsa_train.head_scorer`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from qfeat.pipeline.images import IMAGE_EXTENSIONS
from qfeat.pipeline.stages import run_order
from qfeat.trainers.loop import load_trained, predict
from qfeat.trainers.predict_live import LiveStages
from qfeat.trainers.rsa_data import build_rsa_data, head_of, needed_stages
from qfeat.trainers.runfolder import RunFolder

BATCH = 64  # items per head forward


class RsaScorer:
    """Raw head outputs of every split for chunks of image files."""

    modality = "image"
    extensions = IMAGE_EXTENSIONS

    def __init__(self, run: RunFolder, states: list, device: str):
        head = head_of(run.config)
        stages = needed_stages(head["attention"], head["use_text"], head["use_ratings"])
        records = run.config.stages
        self.head_cfg = head
        self.device = torch.device(device)
        self.live = LiveStages(
            records, [s for s in run_order("image") if s in stages], device, run.name
        )
        regions = records.get("regions")
        self.slots = int(regions["config"]["max_regions"]) + 1 if "regions" in stages else 1
        self.states = states
        self.run_name = run.name
        self.model = None  # built on the first chunk, when the input sizes are known

    def raw(self, items: list[dict[str, Any]]) -> tuple[list[tuple[str, str | None]], np.ndarray]:
        """``(statuses, raw [splits, len(items)])``; NaN where an item failed."""
        from qfeat.trainers.rsa_train import build_head, head_scorer

        outputs, statuses, ok = self.live.run_checked(items)
        raw = np.full((len(self.states), len(items)), np.nan)
        if not len(ok):
            return statuses, raw

        def rows_of(name: str) -> list | None:
            return [outputs[name].rows[i] for i in ok] if name in outputs else None

        text = None
        if "text" in outputs:
            arrays = outputs["text"].arrays
            text = (arrays["embeddings"], arrays["mask"], ok)
        data = build_rsa_data(
            pd.DataFrame({"item_id": [items[i]["item_id"] for i in ok]}),
            outputs["backbone"].arrays["features"],
            ok,
            self.slots,
            regions_rows=rows_of("regions"),
            describe_rows=rows_of("describe"),
            text=text,
        )
        if self.model is None:
            self.model = build_head(data, self.head_cfg).to(self.device).eval()
        score = head_scorer(data, self.device)(self.model)
        for split, state in enumerate(self.states):
            load_trained(self.model, state, f"{self.run_name} split {split}")
            raw[split, ok] = predict(self.model, score, np.arange(len(ok)), BATCH)
        return statuses, raw
