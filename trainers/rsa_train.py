"""`qfeat train rsa`: the RSA head trained on every split from the cache only.

Reads ``items.parquet`` and the cached ``backbone`` / ``regions`` / ``describe`` /
``text`` stages (only those the ablation needs), trains one head per split with the
protocol of :mod:`qfeat.trainers.protocol` and writes the run folder of
:mod:`qfeat.trainers.runfolder`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qfeat.cache.basis import shortfall
from qfeat.cache.items import read_items
from qfeat.errors import OptionError
from qfeat.pipeline.threads import thread_count
from qfeat.trainers.basis import training_basis
from qfeat.trainers.compat import require_same_stage, same_stage_model
from qfeat.trainers.loop import gradient_fit
from qfeat.trainers.protocol import TrainJob, loop_config, targets, train_and_record
from qfeat.trainers.rsa import ATTENTION, RSAHead
from qfeat.trainers.rsa_data import RSAData, head_of, load_rsa_data, needed_stages, text_fits
from qfeat.trainers.runconfig import RunConfig
from qfeat.trainers.runfolder import RunFolder
from qfeat.trainers.runinfo import dataset_scale, stage_record
from qfeat.trainers.settings import RsaRequest, RSASettings
from qfeat.trainers.splits import MIN_ROWS, make_splits


def variant(config: RunConfig) -> str:
    """``rsa``, ``uniform`` or ``global``, plus the ablations that are off."""
    head = head_of(config)
    off = [n for n, key in (("no text", "use_text"), ("no ratings", "use_ratings"))
           if head.get(key) is False]  # fmt: skip
    return ", ".join([str(head.get("attention", "?")), *off])


def build_head(data: RSAData, head_cfg: dict[str, Any]) -> RSAHead:
    """An RSA head sized for ``data`` from the run config's ``head`` section."""
    return RSAHead(
        channels=data.channels,
        text_dim=data.text_dim,
        hidden=int(head_cfg["hidden"]),
        attention=head_cfg["attention"],
        use_text=bool(head_cfg["use_text"]),
        use_ratings=bool(head_cfg["use_ratings"]),
        rating_dim=int(head_cfg["rating_dim"]),
    )


def head_scorer(data: RSAData, device) -> Callable:
    """``make_score(model)`` for :func:`qfeat.trainers.protocol.run_splits` and evaluation."""

    def make_score(model: RSAHead) -> Callable[[np.ndarray], torch.Tensor]:
        return lambda rows: model(data.batch(rows, device))

    return make_score


def train_rsa(
    req: RsaRequest,
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    t_start = time.perf_counter()
    if req.attention not in ATTENTION:
        raise OptionError(f"--attention must be one of {', '.join(ATTENTION)}")
    stages = needed_stages(req.attention, req.use_text, req.use_ratings)
    fits, unfit = text_fits(stages)
    chosen = training_basis(
        req, RSASettings, "rsa", stages, fits=fits, unfit=unfit.replace("DATASET", req.dataset)
    )
    preset, tcfg = chosen.preset, chosen.settings
    for line in chosen.lines(("hidden", "rating_dim")):
        log(line)
    data = load_rsa_data(req.cache_dir, req.dataset, stages, chosen.selection)
    if len(data.data) < MIN_ROWS:
        raise shortfall(chosen.basis, data.ok, MIN_ROWS)
    if data.dropped:
        log(f"{data.dropped} items without usable rows in every needed stage are left out")
    head_cfg = {
        "attention": req.attention,
        "use_text": req.use_text,
        "use_ratings": req.use_ratings,
        "hidden": int(tcfg["hidden"]),
        "rating_dim": int(tcfg["rating_dim"]),
    }
    device = torch.device(req.device)
    folder = req.folder("rsa").path
    folder.mkdir(parents=True, exist_ok=True)
    splits = make_splits(data.data, n_splits=req.splits, seed=req.seed)
    if device.type == "cpu":
        # the head's matmuls are tiny: one thread avoids thread-pool overhead that made
        # steps 3-6x slower on 2 cores under load (measured on the demo set)
        torch.set_num_threads(thread_count(1))
    config = req.run_config(
        "rsa",
        modality="image",
        preset=preset,
        settings=tcfg,
        details={"head": head_cfg},
        stages=stage_record(data.stages),
        fingerprints={n: s.fingerprint for n, s in data.stages.items()},
        basis=chosen.basis.record(),
        official_splits=splits[0].official,
        device=str(device),
        items=len(data.data),
        mos_range=dataset_scale(req.cache_dir, req.dataset, read_items(req.cache_dir, req.dataset)),
    )
    loop = loop_config(tcfg, req.seed)
    fit = gradient_fit(
        lambda _: build_head(data, head_cfg),
        head_scorer(data, device),
        loop,
        targets(data.data, device),
        device,
    )
    job = TrainJob(data.data, splits, fit, folder, steps=loop.epochs, seed=req.seed)
    metrics = train_and_record(
        job,
        config,
        t_start,
        {"trainer": "rsa", "attention": req.attention},
        log,
        progress,
    )
    return folder, metrics


def evaluation_basis(run: RunFolder, cache_dir: Path, dataset: str, stages: list[str]):
    """The target's set made with the run's backbone and text models, else its default
    set (which :func:`evaluate_on` then refuses, naming the difference)."""
    from qfeat.cache.reader import CacheMissing
    from qfeat.trainers.rsa_data import select_needed

    def want(basis) -> bool:
        names = [n for n in ("backbone", "text") if n in basis.stages and n in run.config.stages]
        return all(same_stage_model(run.config.stages[n], basis.stages[n].manifest) for n in names)

    try:
        return select_needed(cache_dir, dataset, stages, want=want, wanted="the run's models")
    except CacheMissing:
        return select_needed(cache_dir, dataset, stages)


def evaluate_on(run: RunFolder, dataset: str, cache_dir: Path, device: str):
    """``qfeat evaluate`` of an rsa run: its checkpoints on ``dataset``'s cache, refused
    when that cache's backbone or text stage differs from the one the run was trained on."""
    from qfeat.trainers.evaluate import score_checkpoints

    head = head_of(run.config)
    stages = needed_stages(head["attention"], head["use_text"], head["use_ratings"])
    data = load_rsa_data(
        cache_dir, dataset, stages, evaluation_basis(run, cache_dir, dataset, stages)
    )
    for name in ("backbone", "text"):
        if name not in stages:
            continue
        require_same_stage(run, name, data.stages[name], dataset)
    return score_checkpoints(
        run,
        dataset,
        data.data,
        lambda: build_head(data, head).to(device),
        head_scorer(data, device),
    )
