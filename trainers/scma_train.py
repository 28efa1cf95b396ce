"""`qfeat train scma`: the Q-CLIP adapter trained from the cache only.

Reads ``items.parquet`` and the ``clip`` stage (hidden states entering block L-K, or
pooled embeddings in ``--mode projection``), rebuilds the frozen CLIP model the cache
was made with (refusing when its identity differs), and trains SCMA on every split.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from qfeat.cache.basis import select_basis, shortfall
from qfeat.cache.items import read_items
from qfeat.cache.reader import CacheMissing, open_stage
from qfeat.errors import DatasetError
from qfeat.pipeline.threads import thread_count
from qfeat.trainers.basis import training_basis
from qfeat.trainers.loop import gradient_fit, load_trained
from qfeat.trainers.protocol import TrainJob, loop_config, targets, train_and_record
from qfeat.trainers.runconfig import RunConfig
from qfeat.trainers.runfolder import RunFolder
from qfeat.trainers.runinfo import dataset_scale, stage_record
from qfeat.trainers.scma import mode_of
from qfeat.trainers.settings import ScmaRequest, SCMASettings
from qfeat.trainers.splits import MIN_ROWS, make_splits


def variant(config: RunConfig) -> str:
    """The training mode (``full`` or ``projection``)."""
    return mode_of(config)


def load_clip_for(stage) -> tuple[torch.nn.Module, Any, dict]:
    """The frozen CLIP model a cached clip stage was computed with."""
    from qfeat.pipeline.models.clip_build import build_clip
    from qfeat.pipeline.models.pe_rope import set_rope_order
    from qfeat.pipeline.stages.clip import ClipStage

    cfg = dict(stage.manifest["config"])
    seed = int(cfg.pop("seed", 0))
    identity = ClipStage(cfg, seed=seed).model_identity()
    if identity != stage.manifest["model"]:
        dataset = stage.dir.parent.parent.name
        raise DatasetError(
            f"{dataset}/clip/{stage.fingerprint} was computed with other clip weights than "
            f"this qfeat builds from its config (cached {stage.manifest['model']}, now "
            f"{identity}): run `qfeat features {dataset}` to recompute it, or point "
            "clip.pretrained at the original weights file"
        )
    pretrained = cfg.get("pretrained", "")
    model, pre = build_clip(cfg["model"], "" if pretrained == "random" else pretrained, seed=seed)
    # caches made before clip.rope existed were computed in PE's own order
    return set_rope_order(model, cfg.get("rope", "pe")).eval(), pre, cfg


def tokenizer_for(model_name: str):
    import open_clip

    from qfeat.pipeline.models.clip_build import OPEN_CLIP_NAMES, tiny_name

    tiny = tiny_name(model_name)
    return open_clip.get_tokenizer(OPEN_CLIP_NAMES[tiny] if tiny else model_name)


def feature_array(mode: str) -> str:
    """The clip stage array a mode reads: hidden states (full) or the pre-projection
    pooled frame features (projection)."""
    return "hidden" if mode == "full" else "pooled"


def usable_data(items: pd.DataFrame, stage, mode: str):
    """``(data, features, cache_rows)``: items with an ok clip row, the cached array the
    mode trains on (hidden states memory-mapped), and each item's row in that array."""
    name = feature_array(mode)
    if stage.markers and name not in stage.array_names():
        dataset = stage.dir.parent.parent.name
        raise DatasetError(
            f"{dataset}'s clip cache ({stage.fingerprint}) has no '{name}' array: it was made "
            f"by an older qfeat (clip stage version {stage.manifest.get('stage_version')}); "
            f"run `qfeat features {dataset}` to recompute it (clip is now version 2, which "
            "also stores the pre-projection features --mode projection reads)"
        )
    table = stage.table(["item_id", "status"])
    table["row"] = np.arange(len(table))
    data = items.merge(table[table["status"] == "ok"], on="item_id", how="inner")
    features = stage.array(name, mmap=(name == "hidden"))
    return data, features, data["row"].to_numpy()


def scorer(model, features, cache_rows: np.ndarray, mode: str, device) -> Callable:
    """``score(rows) -> [len(rows)]`` scores of the items at ``rows`` of the data table."""

    def score(rows: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(features[cache_rows[rows]], dtype=np.float32)).to(device)
        video = model.video_from_hidden(x) if mode == "full" else model.video_from_pooled(x)
        return model.score(video)

    return score


def video_stages(cache_dir: Path, dataset: str, clip_stage) -> dict[str, Any]:
    """The clip stage and the frames stage it was computed from (when still cached), for
    the run's ``stages`` record (what ``qfeat predict`` reruns live)."""
    out = {}
    try:
        fingerprint = clip_stage.manifest["upstream"]["frames"]
        out["frames"] = open_stage(cache_dir, dataset, "frames", fingerprint)
    except (KeyError, CacheMissing):
        pass
    out["clip"] = clip_stage
    return out


def train_scma(
    req: ScmaRequest,
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    from qfeat.trainers.scma import QCLIP

    t_start = time.perf_counter()
    chosen = training_basis(req, SCMASettings, "scma", list(VIDEO_STAGES))
    preset, tcfg = chosen.preset, chosen.settings
    if req.imported:
        tcfg = {**tcfg, "epochs": 0}  # evaluated as imported, not trained
    for line in chosen.lines(("r",)):
        log(line)
    items = read_items(req.cache_dir, req.dataset)
    clip_stage = chosen.basis.stages["clip"]
    base_clip, _, clip_cfg = load_clip_for(clip_stage)
    k = int(clip_cfg["adapted_blocks"])
    tokenizer = tokenizer_for(clip_cfg["model"])

    data, features, cache_rows = usable_data(items, clip_stage, req.mode)
    if len(data) < MIN_ROWS:
        raise shortfall(chosen.basis, {"clip": len(data)}, MIN_ROWS)
    device = torch.device(req.device)

    init_state = req.init_state
    if req.imported:
        from qfeat.trainers.scma_release import from_release, release_shape

        init_state = from_release(init_state, release_shape(base_clip)[0], k)
    elif req.init and init_state is None:
        from qfeat.trainers.compat import require_matching
        from qfeat.trainers.predict_scma import stage_records

        init_run = RunFolder.create(req.runs_dir, req.init)
        if not init_run.checkpoints():
            raise DatasetError(f"--init {req.init}: no checkpoint in {init_run.path}")
        require_matching("clip", stage_records(init_run)["clip"], clip_stage.manifest,
                         req.dataset, init_run.path)  # fmt: skip
        init_state = init_run.split_state(0)

    folder = req.folder("scma").path
    folder.mkdir(parents=True, exist_ok=True)
    splits = make_splits(data, n_splits=req.splits, seed=req.seed)

    def build(_: int) -> QCLIP:
        model = QCLIP(copy.deepcopy(base_clip), tokenizer, k=k, r=int(tcfg["r"]), mode=req.mode)
        if req.imported:  # every trainable weight must come from the checkpoint
            return load_trained(model, init_state, f"{req.init}")
        if init_state is not None:
            missing = model.load_state_dict(init_state, strict=False)
            if missing.unexpected_keys:
                raise DatasetError(
                    f"--init {req.init}: incompatible checkpoint ({missing.unexpected_keys[:3]})"
                )
        return model

    if device.type == "cpu":
        # Two threads: a tiny-preset step (96 frames x 65 tokens through two blocks) took
        # 50 ms against 83 ms on one thread on an idle 2-core VM. More threads were not
        # measured; the RSA head's much smaller steps stay on one (trainers/rsa_train.py).
        torch.set_num_threads(thread_count(2))
    config = req.run_config(
        "scma",
        modality="video",
        preset=preset,
        settings=tcfg,
        details={
            "mode": req.mode,
            "adapted_blocks": k,
            "clip": clip_cfg,
            "init": req.init,
            **({"imported": "qclip"} if req.imported else {}),
        },
        stages=stage_record(video_stages(req.cache_dir, req.dataset, clip_stage)),
        fingerprints={"clip": clip_stage.fingerprint, **clip_stage.manifest["upstream"]},
        basis=chosen.basis.record(),
        official_splits=splits[0].official,
        device=str(device),
        items=len(data),
        mos_range=dataset_scale(req.cache_dir, req.dataset, items),
    )
    loop = loop_config(tcfg, req.seed)
    fit = gradient_fit(
        build,
        lambda model: scorer(model, features, cache_rows, req.mode, device),
        loop,
        targets(data, device),
        device,
    )
    job = TrainJob(data, splits, fit, folder, steps=loop.epochs, seed=req.seed)
    metrics = train_and_record(
        job,
        config,
        t_start,
        {"trainer": "scma", "mode": req.mode},
        log,
        progress,
    )
    return folder, metrics


VIDEO_STAGES = ("clip", "frames")  # what a run reads: clip, and the frames it was made from


def evaluation_clip(run: RunFolder, cache_dir: Path, dataset: str):
    """The target's clip stage of a set made with the run's CLIP model and settings, else
    the one of its default set (which :func:`evaluate_on` then refuses, naming the
    difference)."""
    from qfeat.trainers.compat import same_stage_model
    from qfeat.trainers.predict_scma import stage_records

    trained = stage_records(run)["clip"]

    def want(basis) -> bool:
        return same_stage_model(trained, basis.stages["clip"].manifest, "clip")

    try:
        chosen = select_basis(cache_dir, dataset, list(VIDEO_STAGES), want=want, wanted="the run's")
    except CacheMissing:
        chosen = select_basis(cache_dir, dataset, list(VIDEO_STAGES))
    return chosen.basis.stages["clip"]


def evaluate_on(run: RunFolder, dataset: str, cache_dir: Path, device: str):
    """``qfeat evaluate`` of an scma run: its checkpoints on ``dataset``'s clip cache,
    refused when that cache was made with another CLIP model or K."""
    from qfeat.trainers.compat import require_matching
    from qfeat.trainers.evaluate import score_checkpoints
    from qfeat.trainers.predict_scma import stage_records
    from qfeat.trainers.scma import QCLIP

    stage = evaluation_clip(run, cache_dir, dataset)
    require_matching("clip", stage_records(run)["clip"], stage.manifest, dataset, run.path)
    base, _, clip_cfg = load_clip_for(stage)
    k = int(clip_cfg["adapted_blocks"])
    tokenizer = tokenizer_for(clip_cfg["model"])
    mode, r = mode_of(run.config), int(run.config.setting("r"))
    data, features, cache_rows = usable_data(read_items(cache_dir, dataset), stage, mode)

    def build():
        return QCLIP(copy.deepcopy(base), tokenizer, k=k, r=r, mode=mode).to(device)

    def make_score(model):
        return scorer(model, features, cache_rows, mode, device)

    return score_checkpoints(run, dataset, data, build, make_score)
