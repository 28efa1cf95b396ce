"""`qfeat evaluate RUN DATASET`: a trained run scored on another dataset's cache.

Every split's checkpoint predicts every usable item of the target dataset (zero-shot
cross-dataset); metrics per checkpoint, then mean / median / std as in ``metrics.json``.
Refuses when the target cache was made with a different frozen model than the run's.
Results go to ``<run>/eval-<dataset>.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qfeat.trainers.loop import load_trained, predict
from qfeat.trainers.registry import check_cached_dataset, get_trainer
from qfeat.trainers.runfolder import KEYS, RunFolder, split_metrics, summarise


def evaluate_run(
    run_dir: Path | RunFolder, dataset: str, cache_dir: Path, device: str = "cpu"
) -> dict[str, Any]:
    run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
    trainer = get_trainer(run.config.trainer, run.path)
    check_cached_dataset(trainer, cache_dir, dataset)
    return trainer.hook("evaluate")(run, dataset, cache_dir, device)


def score_checkpoints(
    run: RunFolder, dataset: str, data, build: Callable, make_score: Callable
) -> dict[str, Any]:
    """Every split's checkpoint (a gradient-trained head: ``build()`` then its weights)
    scores every usable item of ``dataset``; see :func:`summarise_splits`."""
    scores = []
    for index, state in enumerate(run.states()):
        model = build()
        load_trained(model, state, f"{run.path} split {index}")
        scores.append(predict(model, make_score(model), np.arange(len(data)), 64))
    return summarise_splits(run, dataset, data, scores)


def summarise_splits(run: RunFolder, dataset: str, data, scores: list) -> dict[str, Any]:
    """Metrics of each split's ``scores`` of ``data``'s items (rows in order) against
    their MOS, then mean / median / std; written to ``<run>/eval-<dataset>.json`` and
    returned."""
    per_split = []
    for index, pred in enumerate(scores):
        record, _ = split_metrics(index, dataset, data["item_id"], data["mos"].to_numpy(), pred)
        per_split.append(record)
    result = summarise(per_split, dataset)
    result.update({"splits": per_split, "dataset": dataset, "run": run.name, "items": len(data)})
    run.write_eval(dataset, result)
    return result


__all__ = ["KEYS", "evaluate_run", "score_checkpoints", "summarise_splits"]
