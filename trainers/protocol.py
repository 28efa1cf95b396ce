"""The evaluation protocol shared by every trainer: one model per split, trained on the
split's training part, selected on its validation part, scored on its test part(s).

Test rows never reach :func:`trainers.loop.fit`. Each split's best weights go to
``split-NN.safetensors`` in the run folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainers.loop import LoopConfig, fit, predict
from trainers.runfolder import split_metrics

CHECKPOINT = "split-{:02d}.safetensors"


@dataclass
class TrainRequest:
    """What every ``qfeat train <head>`` command takes."""

    dataset: str
    cache_dir: Path
    runs_dir: Path
    run: str | None = None
    splits: int = 10
    epochs: int | None = None
    seed: int = 0
    device: str = "cpu"
    sets: list[str] | None = None
    preset: str | None = None


def loop_config(tcfg: dict[str, Any], seed: int) -> LoopConfig:
    """The training loop's settings from a preset's trainer section (``[rsa]``, ``[scma]``)."""
    return LoopConfig(
        epochs=int(tcfg["epochs"]),
        batch_size=int(tcfg["batch_size"]),
        lr=float(tcfg["lr"]),
        weight_decay=float(tcfg["weight_decay"]),
        warmup_epochs=float(tcfg["warmup_epochs"]),
        rank_weight=float(tcfg["rank_weight"]),
        patience=int(tcfg["patience"]),
        seed=seed,
    )


def checkpoints(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob(CHECKPOINT.replace("{:02d}", "*")))


def split_state(run_dir: Path, index: int) -> dict[str, torch.Tensor]:
    """The trainable weights split ``index`` of a run saved (safetensors, no pickle)."""
    from safetensors.torch import load_file

    from pipeline.datasets.base import DatasetError

    path = run_dir / CHECKPOINT.format(index)
    if not path.is_file():
        raise DatasetError(f"{run_dir} has no checkpoint {path.name}")
    return load_file(str(path))


def run_splits(
    data: pd.DataFrame,
    splits: list,
    build: Callable[[int], nn.Module],
    make_score: Callable[[nn.Module], Callable[[np.ndarray], torch.Tensor]],
    loop: LoopConfig,
    folder: Path,
    device: torch.device,
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], pd.DataFrame, list[list[dict[str, Any]]], int]:
    """Train and test on every split; ``(per_split records, predictions, histories, params)``.

    ``build(split_index)`` returns a fresh model (seeded by the caller's seed + index);
    ``make_score(model)(rows)`` maps rows of ``data`` to differentiable scores.
    ``progress`` gets each epoch's record with ``split``, ``done`` and ``total`` (epochs
    over all splits; a split stopped early counts as finished) added; without it each
    epoch is a ``log`` line. Each split's test result is always a ``log`` line.
    """
    from safetensors.torch import save_file

    mos = torch.tensor(data["mos"].to_numpy(), dtype=torch.float32, device=device)
    per_split, frames, histories, params = [], [], [], 0
    total = len(splits) * loop.epochs
    for position, split in enumerate(splits):
        torch.manual_seed(loop.seed + split.index)
        model = build(split.index).to(device)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        score = make_score(model)
        cfg = replace(loop, seed=loop.seed + split.index)

        def on_epoch(r: dict, i: int = split.index, before: int = position * loop.epochs) -> None:
            if progress is not None:
                progress({**r, "split": i, "done": before + r["epoch"], "total": total})
                return
            loss, val = r["train_loss"], r["val_srcc"]
            log(f"split {i} epoch {r['epoch']}: loss {loss:.4f}, val SRCC {val:.4f}")

        best, history = fit(model, score, mos, split.train, split.val, cfg, on_epoch)
        if progress is not None and history and history[-1]["epoch"] < loop.epochs:
            done = (position + 1) * loop.epochs  # stopped early: the split is finished
            progress({**history[-1], "split": split.index, "done": done, "total": total})
        model.load_state_dict(best, strict=False)
        save_file(
            {k: v.contiguous().cpu() for k, v in best.items()},
            str(folder / CHECKPOINT.format(split.index)),
        )
        histories.append(history)
        for test_name, rows in split.test.items():
            pred = predict(model, score, rows, cfg.batch_size)
            record, frame = split_metrics(
                split.index,
                test_name,
                data["item_id"].to_numpy()[rows],
                data["mos"].to_numpy()[rows],
                pred,
            )
            per_split.append(record)
            frames.append(frame)
            srcc, plcc = (_fmt(record[k]) for k in ("srcc", "plcc"))
            log(f"split {split.index} {test_name}: SRCC {srcc}, PLCC {plcc} (n={record['n']})")
    return per_split, pd.concat(frames, ignore_index=True), histories, params


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
