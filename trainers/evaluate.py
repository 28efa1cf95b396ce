"""`qfeat evaluate RUN DATASET`: a trained run scored on another dataset's cache.

Every split's checkpoint predicts every usable item of the target dataset (zero-shot
cross-dataset); metrics per checkpoint, then mean / median / std as in ``metrics.json``.
Refuses when the target cache was made with a different frozen model than the run's.
Results go to ``<run>/eval-<dataset>.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cache.items import read_items
from cache.reader import open_stage
from pipeline.datasets.base import DatasetError
from trainers.loop import predict
from trainers.runfolder import KEYS, split_metrics, summarise


def evaluate_run(
    run_dir: Path, dataset: str, cache_dir: Path, device: str = "cpu"
) -> dict[str, Any]:
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise DatasetError(f"{run_dir} is not a qfeat run folder (no config.json)")
    config = json.loads(config_path.read_text())
    if config.get("trainer") != "scma":
        raise DatasetError(
            f"evaluate supports scma runs; {run_dir} is a {config.get('trainer')} run"
        )
    return _evaluate_scma(run_dir, config, dataset, cache_dir, device)


def _evaluate_scma(run_dir: Path, config: dict, dataset: str, cache_dir: Path, device: str):
    from safetensors.torch import load_file

    from trainers.scma import QCLIP
    from trainers.scma_train import CHECKPOINT, load_clip_for, tokenizer_for, usable_data

    stage = open_stage(cache_dir, dataset, "clip")
    trained_on = config["clip"]
    target = {k: v for k, v in stage.manifest["config"].items() if k != "seed"}
    for key in ("model", "pretrained", "adapted_blocks"):
        if str(target.get(key)) != str(trained_on.get(key)):
            raise DatasetError(
                f"{dataset}'s clip cache was made with {key}={target.get(key)!r}, the run was "
                f"trained on {key}={trained_on.get(key)!r}; recompute {dataset} with the run's "
                "clip settings (qfeat features ... --set clip.<key>=...)"
            )
    base, _, clip_cfg = load_clip_for(stage)
    k = int(clip_cfg["adapted_blocks"])
    tokenizer = tokenizer_for(clip_cfg["model"])
    mode = config["mode"]
    data, features, cache_rows = usable_data(read_items(cache_dir, dataset), stage, mode)
    checkpoints = sorted(run_dir.glob(CHECKPOINT.replace("{:02d}", "*")))
    if not checkpoints:
        raise DatasetError(f"{run_dir} has no checkpoints")
    per_split = []
    for index, path in enumerate(checkpoints):
        model = QCLIP(copy.deepcopy(base), tokenizer, k=k, r=int(config["scma"]["r"]), mode=mode)
        model.load_state_dict(load_file(str(path)), strict=False)
        model.to(device)

        def score(rows, model=model):
            x = torch.from_numpy(np.asarray(features[cache_rows[rows]], dtype=np.float32)).to(
                device
            )
            video = model.video_from_hidden(x) if mode == "full" else model.video_from_pooled(x)
            return model.score(video)

        pred = predict(model, score, np.arange(len(data)), 16)
        record, _ = split_metrics(index, dataset, data["item_id"], data["mos"].to_numpy(), pred)
        per_split.append(record)
    result = summarise(per_split, dataset)
    result.update(
        {"splits": per_split, "dataset": dataset, "run": run_dir.name, "items": len(data)}
    )
    (run_dir / f"eval-{dataset}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


__all__ = ["KEYS", "evaluate_run"]
