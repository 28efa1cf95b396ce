"""`qfeat evaluate RUN DATASET`: a trained run scored on another dataset's cache.

Every split's checkpoint predicts every usable item of the target dataset (zero-shot
cross-dataset); metrics per checkpoint, then mean / median / std as in ``metrics.json``.
Refuses when the target cache was made with a different frozen model than the run's.
Results go to ``<run>/eval-<dataset>.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qfeat.errors import DatasetError
from qfeat.trainers.loop import predict
from qfeat.trainers.protocol import checkpoints
from qfeat.trainers.registry import check_cached_dataset, get_trainer
from qfeat.trainers.runfolder import KEYS, read_config, split_metrics, summarise


def evaluate_run(
    run_dir: Path, dataset: str, cache_dir: Path, device: str = "cpu"
) -> dict[str, Any]:
    config = read_config(run_dir)
    trainer = get_trainer(config.get("trainer"), run_dir)
    check_cached_dataset(trainer, cache_dir, dataset)
    return trainer.hook("evaluate")(run_dir, config, dataset, cache_dir, device)


def score_checkpoints(
    run_dir: Path, dataset: str, data, build: Callable, make_score: Callable
) -> dict[str, Any]:
    """Every split's checkpoint scores every usable item of ``dataset``; the summary is
    written to ``<run>/eval-<dataset>.json`` and returned."""
    from safetensors.torch import load_file

    paths = checkpoints(run_dir)
    if not paths:
        raise DatasetError(f"{run_dir} has no checkpoints")
    per_split = []
    for index, path in enumerate(paths):
        model = build()
        model.load_state_dict(load_file(str(path)), strict=False)
        pred = predict(model, make_score(model), np.arange(len(data)), 64)
        record, _ = split_metrics(index, dataset, data["item_id"], data["mos"].to_numpy(), pred)
        per_split.append(record)
    result = summarise(per_split, dataset)
    result.update(
        {"splits": per_split, "dataset": dataset, "run": run_dir.name, "items": len(data)}
    )
    (run_dir / f"eval-{dataset}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


__all__ = ["KEYS", "evaluate_run", "score_checkpoints"]
