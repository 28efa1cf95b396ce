"""`qfeat evaluate RUN DATASET`: a trained run scored on another dataset's cache.

Every split's checkpoint predicts every usable item of the target dataset (zero-shot
cross-dataset); metrics per checkpoint, then mean / median / std as in ``metrics.json``.
Refuses when the target cache was made with a different frozen model than the run's.
Results go to ``<run>/eval-<dataset>.json``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qfeat.cache.items import read_items
from qfeat.cache.reader import open_stage
from qfeat.errors import DatasetError
from qfeat.trainers.loop import predict
from qfeat.trainers.protocol import checkpoints
from qfeat.trainers.runfolder import KEYS, split_metrics, summarise


def evaluate_run(
    run_dir: Path, dataset: str, cache_dir: Path, device: str = "cpu"
) -> dict[str, Any]:
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise DatasetError(f"{run_dir} is not a qfeat run folder (no config.json)")
    config = json.loads(config_path.read_text())
    trainer = config.get("trainer")
    if trainer == "scma":
        return _evaluate_scma(run_dir, config, dataset, cache_dir, device)
    if trainer == "rsa":
        return _evaluate_rsa(run_dir, config, dataset, cache_dir, device)
    raise DatasetError(f"{run_dir} is a run of an unknown trainer ({trainer!r})")


def _score_checkpoints(
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


def _evaluate_rsa(run_dir: Path, config: dict, dataset: str, cache_dir: Path, device: str):
    from qfeat.trainers.rsa_data import load_rsa_data, needed_stages
    from qfeat.trainers.rsa_train import build_head, head_scorer

    head = config["head"]
    stages = needed_stages(head["attention"], head["use_text"], head["use_ratings"])
    data = load_rsa_data(cache_dir, dataset, stages)
    for name in ("backbone", "text"):
        if name not in stages:
            continue
        trained, target = config["stages"][name], data.stages[name].manifest
        same_config = {k: v for k, v in trained["config"].items() if k != "seed"} == {
            k: v for k, v in target["config"].items() if k != "seed"
        }
        if trained["model"] != target["model"] or not same_config:
            raise DatasetError(
                f"{dataset}'s {name} cache was made with another model or settings "
                f"({target['model'].get('name')}, {target['fingerprint']}) than the run was "
                f"trained on ({trained['model'].get('name')}, {trained['fingerprint']}); "
                f"recompute it with the run's settings: qfeat stage {name} {dataset} --set "
                f"{name}.model=... (see {run_dir / 'config.json'})"
            )
    return _score_checkpoints(
        run_dir,
        dataset,
        data.data,
        lambda: build_head(data, head).to(device),
        head_scorer(data, device),
    )


def _evaluate_scma(run_dir: Path, config: dict, dataset: str, cache_dir: Path, device: str):
    from qfeat.trainers.scma import QCLIP
    from qfeat.trainers.scma_train import load_clip_for, scorer, tokenizer_for, usable_data

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

    def build():
        return QCLIP(copy.deepcopy(base), tokenizer, k=k, r=int(config["scma"]["r"]), mode=mode).to(
            device
        )

    def make_score(model):
        return scorer(model, features, cache_rows, mode, device)

    return _score_checkpoints(run_dir, dataset, data, build, make_score)


__all__ = ["KEYS", "evaluate_run"]
