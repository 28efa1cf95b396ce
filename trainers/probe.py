"""`qfeat train probe`: the linear probe researchers run first on frozen features.

Closed-form ridge regression on pooled cached features, the floor every learned head
must beat on the same splits:

- images: the ``backbone`` map ``[C, h, w]`` pooled to its per-channel spatial mean and
  standard deviation (``2C`` numbers);
- videos: the ``clip`` stage's per-frame projected ``embeddings`` ``[T, D]`` pooled to
  their mean and standard deviation over frames (``2D`` numbers).

Per split, the features are standardised on the training part, and the penalty is
chosen from a log-spaced grid (:class:`qfeat.trainers.probe_settings.ProbeSettings`) by
the exact leave-one-out error on the training part (one SVD gives every penalty's LOO
residuals: ``e_i / (1 - H_ii)``, as scikit-learn's RidgeCV computes them) or by SRCC on
the validation part. The split's state is the standardisation, the coefficients and the
chosen penalty (``split-NN.safetensors``, float64); no gradient step is taken, so the
shared protocol (:mod:`qfeat.trainers.protocol`) sees one history record per split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from qfeat.cache.basis import select_basis, shortfall
from qfeat.cache.items import read_items
from qfeat.cache.reader import CacheMissing
from qfeat.errors import DatasetError
from qfeat.trainers.basis import training_basis
from qfeat.trainers.compat import require_same_stage, same_stage_model
from qfeat.trainers.fitted import FittedSplit
from qfeat.trainers.metrics import srcc
from qfeat.trainers.probe_settings import ProbeRequest, ProbeSettings
from qfeat.trainers.protocol import TrainJob, train_and_record
from qfeat.trainers.registry import TRAINERS, check_cached_dataset
from qfeat.trainers.runconfig import RunConfig
from qfeat.trainers.runfolder import RunFolder
from qfeat.trainers.runinfo import dataset_scale, stage_record
from qfeat.trainers.splits import MIN_ROWS, make_splits

#: modality -> (the cached stage pooled, its array, the axes pooled over)
SOURCES = {"image": ("backbone", "features", (2, 3)), "video": ("clip", "embeddings", (1,))}
#: modality -> the stages a probe run reads (videos: clip and the frames it was made from,
#: which `qfeat predict` reruns live)
NEEDED = {"image": ["backbone"], "video": ["clip", "frames"]}
CHUNK = 256  # items pooled at a time (a KonIQ backbone map does not fit in RAM at once)
STD_FLOOR = 1e-8  # features constant on the training part are left at 0 after scaling


# ----------------------------------------------------------------------------- features
def pool(array: np.ndarray, modality: str) -> np.ndarray:
    """``[N, 2F]`` float64: the mean and standard deviation of each item's cached array
    over its spatial positions (images, ``[N, C, h, w]``) or its frames (videos,
    ``[N, T, D]``)."""
    x = np.asarray(array, dtype=np.float64)
    axes = SOURCES[modality][2]
    return np.concatenate([x.mean(axis=axes), x.std(axis=axes)], axis=1)


def cached_modality(cache_dir: Path, dataset: str) -> str:
    """``image`` or ``video``: which of the probe's source stages ``dataset`` has cached."""
    found = [m for m, (stage, _, _) in SOURCES.items() if (cache_dir / dataset / stage).is_dir()]
    if not found:
        raise CacheMissing(
            f"the probe reads {dataset}'s cached backbone (images) or clip (videos) stage; "
            f"neither is cached: make it with `qfeat features {dataset}`"
        )
    return found[0]


@dataclass
class PooledData:
    """The usable items (``data``: items with an ok row, in cache order) and their pooled
    features ``x`` ``[len(data), 2F]``; ``stages`` are the cached stages read."""

    data: pd.DataFrame
    x: np.ndarray
    stages: dict[str, Any]
    modality: str


def load_pooled(cache_dir: Path, dataset: str, modality: str, stages: dict) -> PooledData:
    """Every usable item of ``dataset``'s cache with its pooled features, from the
    basis' ``stages`` (name -> :class:`qfeat.cache.reader.Stage`)."""
    name, array_name, _ = SOURCES[modality]
    stage = stages[name]
    table = stage.table(["item_id", "status"])
    table["row"] = np.arange(len(table))
    data = read_items(cache_dir, dataset).merge(
        table[table["status"] == "ok"], on="item_id", how="inner"
    )
    array = stage.array(array_name, mmap=True)
    rows = data["row"].to_numpy()
    parts = [pool(array[rows[i : i + CHUNK]], modality) for i in range(0, len(rows), CHUNK)]
    x = np.concatenate(parts) if parts else np.zeros((0, 0))
    read = {n: stages[n] for n in NEEDED[modality] if n in stages}
    return PooledData(data.reset_index(drop=True), x, read, modality)


def evaluation_stages(run: RunFolder, cache_dir: Path, dataset: str, modality: str) -> dict:
    """The target's set whose source stage was made with the run's model, else its
    default set (which :func:`evaluate_on` then refuses, naming the difference)."""
    source = SOURCES[modality][0]

    def want(basis) -> bool:
        return same_stage_model(run.config.stages[source], basis.stages[source].manifest)

    needed = NEEDED[modality]
    try:
        chosen = select_basis(cache_dir, dataset, needed, want=want, wanted="the run's model")
    except CacheMissing:
        chosen = select_basis(cache_dir, dataset, needed)
    return chosen.basis.stages


# ----------------------------------------------------------------------------- ridge
def alpha_grid(settings: dict[str, Any]) -> np.ndarray:
    """The penalties tried, log-spaced from ``alpha_min`` to ``alpha_max``."""
    low, high = float(settings["alpha_min"]), float(settings["alpha_max"])
    return np.geomspace(low, high, int(settings["alpha_steps"]))


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, scale)`` of each column (scale 1 where the column is constant)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > STD_FLOOR, scale, 1.0)


def ridge_path(
    z: np.ndarray, y: np.ndarray, alphas: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept for every penalty in ``alphas``.

    ``z`` ``[n, p]`` (standardised), ``y`` ``[n]``. Returns ``(weights [len(alphas), p],
    intercepts [len(alphas)], loo_mse [len(alphas)])``: the exact leave-one-out mean
    squared error of each penalty from one thin SVD of the centred ``z`` (hat matrix
    ``H = U diag(s²/(s²+α)) Uᵀ + 1/n``)."""
    n = len(y)
    z_mean, y_mean = z.mean(axis=0), y.mean()
    zc, yc = z - z_mean, y - y_mean
    u, s, vt = np.linalg.svd(zc, full_matrices=False)
    uty = u.T @ yc
    weights, intercepts, loo = [], [], []
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        fitted = u @ (shrink * uty) + y_mean
        leverage = (u**2) @ shrink + 1.0 / n
        residual = (y - fitted) / np.maximum(1.0 - leverage, 1e-12)
        w = vt.T @ (s / (s**2 + alpha) * uty)
        weights.append(w)
        intercepts.append(y_mean - z_mean @ w)
        loo.append(float(np.mean(residual**2)))
    return np.array(weights), np.array(intercepts), np.array(loo)


def probe_fit(x: np.ndarray, mos: np.ndarray, settings: dict[str, Any]) -> Callable:
    """The trainer contract's ``fit`` (:data:`qfeat.trainers.fitted.FitSplit`) for the
    ridge probe on pooled features ``x`` and targets ``mos`` (every row of the data)."""
    alphas = alpha_grid(settings)

    def fit_split(split, seed: int, on_epoch: Callable[[dict[str, Any]], None]) -> FittedSplit:
        train, val = split.train, split.val
        mean, scale = standardise(x[train])
        weights, intercepts, loo = ridge_path((x[train] - mean) / scale, mos[train], alphas)

        def predict(k: int, rows: np.ndarray) -> np.ndarray:
            return ((x[rows] - mean) / scale) @ weights[k] + intercepts[k]

        val_srcc = [srcc(predict(k, val), mos[val]) if len(val) > 2 else np.nan
                    for k in range(len(alphas))]  # fmt: skip
        if settings["selection"] == "val" and np.isfinite(val_srcc).any():
            best = int(np.nanargmax(val_srcc))
        else:  # loo, or no usable validation part: the smallest LOO error (largest α on ties)
            best = int(len(alphas) - 1 - np.argmin(loo[::-1]))
        state = {
            "weight": torch.from_numpy(weights[best]),
            "intercept": torch.tensor([intercepts[best]], dtype=torch.float64),
            "mean": torch.from_numpy(mean),
            "scale": torch.from_numpy(scale),
            "alpha": torch.tensor([alphas[best]], dtype=torch.float64),
        }
        record = {
            "epoch": 1,
            "train_loss": float(loo[best]),  # the leave-one-out MSE of the chosen penalty
            "val_srcc": float(val_srcc[best]),
            "alpha": float(alphas[best]),
        }
        on_epoch(record)
        return FittedSplit(
            state=state,
            score=lambda rows: predict(best, rows),
            history=[record],
            params=int(weights.shape[1]) + 1,
        )

    return fit_split


def apply_state(state: dict[str, torch.Tensor], x: np.ndarray) -> np.ndarray:
    """A split's saved probe on pooled features ``x`` ``[n, 2F]``: its scores ``[n]``."""
    weight, mean, scale = (state[k].double().numpy() for k in ("weight", "mean", "scale"))
    if x.shape[1] != weight.shape[0]:
        raise DatasetError(
            f"the probe was fitted on {weight.shape[0]} pooled features, these items have "
            f"{x.shape[1]}: they come from another model's cache"
        )
    return ((x - mean) / scale) @ weight + float(state["intercept"].double().item())


# ----------------------------------------------------------------------------- training
def train_probe(
    req: ProbeRequest,
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    t_start = time.perf_counter()
    check_cached_dataset(TRAINERS["probe"], req.cache_dir, req.dataset)
    modality = cached_modality(Path(req.cache_dir), req.dataset)
    source = SOURCES[modality][0]
    chosen = training_basis(req, ProbeSettings, "probe", NEEDED[modality])
    preset, tcfg = chosen.preset, chosen.settings
    for line in chosen.lines(("selection", "alpha_min", "alpha_max", "alpha_steps")):
        log(line)
    pooled = load_pooled(Path(req.cache_dir), req.dataset, modality, chosen.basis.stages)
    if len(pooled.data) < MIN_ROWS:
        raise shortfall(chosen.basis, {source: len(pooled.data)}, MIN_ROWS)
    grid = alpha_grid(tcfg)
    log(
        f"{pooled.x.shape[1]} pooled {source} features, penalty from {grid[0]:g} to "
        f"{grid[-1]:g} ({len(grid)} values) by {tcfg['selection']}"
    )
    folder = req.folder("probe").path
    folder.mkdir(parents=True, exist_ok=True)
    splits = make_splits(pooled.data, n_splits=req.splits, seed=req.seed)
    config = req.run_config(
        "probe",
        modality=modality,
        preset=preset,
        settings=tcfg,
        details={"features": {"stage": source, "pooled": int(pooled.x.shape[1])}},
        stages=stage_record(pooled.stages),
        fingerprints={n: s.fingerprint for n, s in pooled.stages.items()},
        basis=chosen.basis.record(),
        official_splits=splits[0].official,
        device="cpu",  # closed form in numpy
        items=len(pooled.data),
        mos_range=dataset_scale(req.cache_dir, req.dataset, read_items(req.cache_dir, req.dataset)),
    )
    mos = pooled.data["mos"].to_numpy(dtype=np.float64)
    job = TrainJob(pooled.data, splits, probe_fit(pooled.x, mos, tcfg), folder, seed=req.seed)
    metrics = train_and_record(job, config, t_start, {"trainer": "probe"}, log, progress)
    return folder, metrics


def evaluate_on(run: RunFolder, dataset: str, cache_dir: Path, device: str) -> dict[str, Any]:
    """``qfeat evaluate`` of a probe run: every split's ridge on ``dataset``'s pooled
    features, refused when that cache was made with another model than the run's."""
    from qfeat.trainers.evaluate import summarise_splits

    modality = run.config.modality or cached_modality(Path(cache_dir), dataset)
    source = SOURCES[modality][0]
    stages = evaluation_stages(run, Path(cache_dir), dataset, modality)
    pooled = load_pooled(Path(cache_dir), dataset, modality, stages)
    require_same_stage(run, source, pooled.stages[source], dataset)
    scores = [apply_state(state, pooled.x) for state in run.states()]
    return summarise_splits(run, dataset, pooled.data, scores)


# ----------------------------------------------------------------------------- report
def variant(config: RunConfig) -> str:
    """``ridge on <stage> mean+std``, and the penalty selection."""
    stage = (config.detail("features") or {}).get("stage", "?")
    return f"ridge on {stage} mean+std, {config.settings.get('selection', 'loo')}"


def summary_rows(config: RunConfig) -> list[list[Any]]:
    """The probe's own settings for the report's summary."""
    features = config.detail("features") or {}
    s = config.settings
    return [
        ["features", f"{features.get('pooled', '?')} pooled from {features.get('stage', '?')}"],
        ["penalty grid", f"{s.get('alpha_min')} .. {s.get('alpha_max')} "
                         f"({s.get('alpha_steps')} values), chosen by {s.get('selection')}"],
    ]  # fmt: skip


def details(run: RunFolder, samples: list, cache_dir: Path) -> dict:
    """The probe has no per-item view beyond its scores (no regions, no prompts)."""
    return {}
