"""The evaluation protocol shared by every trainer: one model per split, trained on the
split's training part, selected on its validation part, scored on its test part(s).

Test rows never reach a trainer's ``fit``. Each split's fitted state goes to
``split-NN.safetensors`` in the run folder, then its test records, epoch history and
predictions to ``split-NN.json`` (written last, atomically). A run folder records the
settings it was started with in ``resume.json``; the same command run again on the same
folder (``--run NAME``) skips the splits already finished, so a killed run resumes where
it stopped with the numbers an uninterrupted one gives (every split is seeded on its own).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from qfeat.cache.layout import write_json_atomic
from qfeat.errors import DatasetError
from qfeat.trainers.fitted import FitSplit
from qfeat.trainers.loop import LoopConfig
from qfeat.trainers.runconfig import RunConfig
from qfeat.trainers.runfolder import CHECKPOINT, RESUME, RunFolder, split_metrics

SPLIT_RESULT = "split-{:02d}.json"


def loop_config(tcfg: dict[str, Any], seed: int) -> LoopConfig:
    """The training loop's settings from a preset's trainer section (``[rsa]``, ``[scma]``)."""
    return LoopConfig(
        epochs=int(tcfg["epochs"]),
        batch_size=int(tcfg["batch_size"]),
        lr=float(tcfg["lr"]),
        weight_decay=float(tcfg["weight_decay"]),
        warmup_epochs=float(tcfg["warmup_epochs"]),
        rank_weight=float(tcfg["rank_weight"]),
        loss=str(tcfg["loss"]),
        patience=int(tcfg["patience"]),
        seed=seed,
    )


def targets(data: pd.DataFrame, device: torch.device) -> torch.Tensor:
    """Every row's MOS as a float32 tensor on ``device`` (what gradient trainers fit)."""
    return torch.tensor(data["mos"].to_numpy(), dtype=torch.float32, device=device)


@dataclass(frozen=True)
class TrainJob:
    """What a trainer hands the protocol: its data table, the splits, how to fit one
    split (:data:`qfeat.trainers.fitted.FitSplit`), and where to write.

    ``steps`` is how many history records a split makes at most (epochs; 1 for a
    closed-form fit): the progress bar's total is ``steps`` x splits."""

    data: pd.DataFrame
    splits: list
    fit: FitSplit
    folder: Path
    steps: int = 1
    seed: int = 0


@dataclass
class SplitResults:
    """Every split's outcome: test ``records`` (one per split and test set), the
    ``predictions`` frame, per-split epoch ``histories``, fitted ``params``, and
    ``resumed_seconds`` (training time of the splits kept from an earlier call)."""

    records: list[dict[str, Any]]
    predictions: pd.DataFrame
    histories: list[list[dict[str, Any]]]
    params: int
    resumed_seconds: float


def epoch_line(split: int, record: dict[str, Any]) -> str:
    """One history record as a log line (the keys it has: loss, validation SRCC)."""
    shown = [
        f"{label} {record[key]:.4f}"
        for key, label in (("train_loss", "loss"), ("val_srcc", "val SRCC"))
        if isinstance(record.get(key), float | int)
    ]
    selection = f" ({record['selection']})" if record.get("selection") else ""
    line = f"split {split} epoch {record.get('epoch', '?')}: {', '.join(shown) or 'fitted'}"
    return line + selection


def run_splits(
    job: TrainJob,
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[dict[str, Any]], None] | None = None,
    spec: dict[str, Any] | None = None,
) -> SplitResults:
    """Fit and test ``job`` on every split.

    ``progress`` gets each history record with ``split``, ``done`` and ``total`` (steps
    over all splits; a split stopped early counts as finished) added; without it each
    record is a ``log`` line. Each split's test result is always a ``log`` line.
    ``spec`` (the run's settings) turns on resuming: see the module docstring.
    """
    splits, folder, steps = job.splits, job.folder, job.steps
    kept: dict[int, dict[str, Any]] = {}
    if spec is not None:
        claim_folder(folder, spec)
        for s in splits:
            if (record := finished_split(folder, s.index)) is not None:
                kept[s.index] = record
        if kept:
            log(f"resuming {folder}: {len(kept)} of {len(splits)} splits already finished")
        else:
            hint = f"the same command with --run {folder.name} resumes it"
            log(f"run folder {folder}; if interrupted, {hint}")
    per_split, frames, histories, params, resumed = [], [], [], 0, 0.0
    total = len(splits) * steps
    for position, split in enumerate(splits):

        def report(record: dict, steps_done: int, i: int = split.index) -> None:
            if progress is not None:
                progress({**record, "split": i, "done": steps_done, "total": total})

        def on_epoch(r: dict, i: int = split.index, before: int = position * steps) -> None:
            if progress is not None:
                report(r, before + int(r.get("epoch", 1)))
            else:
                log(epoch_line(i, r))

        done = kept.get(split.index)
        if done is not None:
            log(f"split {split.index}: already finished in {folder.name}, kept")
            if done["history"]:
                report(done["history"][-1], (position + 1) * steps)
            resumed += done["seconds"]
        else:
            started = time.perf_counter()
            done = _train_split(job, split, log, on_epoch)
            history = done["history"]
            if history and history[-1].get("epoch", steps) < steps:  # stopped early
                report(history[-1], (position + 1) * steps)
            done["seconds"] = time.perf_counter() - started
            if spec is not None:
                write_json_atomic(folder / SPLIT_RESULT.format(split.index), done)
        per_split += done["records"]
        frames += [_frame(f) for f in done["predictions"]]
        histories.append(done["history"])
        params = done["params"]
    return SplitResults(per_split, pd.concat(frames, ignore_index=True), histories, params, resumed)


def _train_split(
    job: TrainJob,
    split,
    log: Callable[[str], None],
    on_epoch: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Fit one split (seeded by the job's seed + the split index), save its state, test
    it: the ``split-NN.json`` record (without ``seconds``). Each history record goes to
    ``on_epoch``, each test result to ``log``."""
    from safetensors.torch import save_file

    data, folder = job.data, job.folder
    seed = job.seed + split.index
    torch.manual_seed(seed)
    fitted = job.fit(split, seed, on_epoch)
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in fitted.state.items()},
        str(folder / CHECKPOINT.format(split.index)),
    )
    records, predictions = [], []
    for test_name, rows in split.test.items():
        pred = np.asarray(fitted.score(rows), dtype=float) if len(rows) else np.zeros(0)
        record, frame = split_metrics(
            split.index,
            test_name,
            data["item_id"].to_numpy()[rows],
            data["mos"].to_numpy()[rows],
            pred,
        )
        records.append(record)
        predictions.append(_frame_record(frame))
        srcc, plcc = (_fmt(record[k]) for k in ("srcc", "plcc"))
        log(f"split {split.index} {test_name}: SRCC {srcc}, PLCC {plcc} (n={record['n']})")
    return {
        "records": records,
        "history": fitted.history,
        "predictions": predictions,
        "params": int(fitted.params),
    }


def train_and_record(
    job: TrainJob,
    config: RunConfig,
    started: float,
    extra: dict[str, Any],
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """:func:`run_splits` (resumable, settings from ``config``) then the run folder's
    files; returns ``metrics.json``'s content. ``started``: the trainer's
    ``time.perf_counter()`` at its start (resumed splits add their recorded time)."""
    spec = config.resume_spec()
    claim_folder(job.folder, spec)  # a refused folder registers nothing
    if config.cache_dir:  # what this run reads stays in the cache (`qfeat cache gc`)
        from qfeat.cache.holds import register_run

        register_run(Path(config.cache_dir), config.dataset, job.folder,
                     trainer=config.trainer, fingerprints=config.all_fingerprints())  # fmt: skip
    out = run_splits(job, log, progress, spec=spec)
    seconds = time.perf_counter() - started + out.resumed_seconds
    return RunFolder(job.folder).write(
        config, out.records, out.predictions, out.histories, out.params, seconds, extra=extra
    )


def claim_folder(folder: Path, spec: dict[str, Any]) -> None:
    """Record ``spec`` in ``folder/resume.json``, or check it against the one recorded."""
    canonical = json.loads(json.dumps(spec, sort_keys=True, default=str))
    path = folder / RESUME
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, canonical)
        return
    stored = json.loads(path.read_text())
    if stored != canonical:
        keys = sorted(k for k in set(stored) | set(canonical) if stored.get(k) != canonical.get(k))
        raise DatasetError(
            f"run folder {folder} holds a run started with other settings ({', '.join(keys)} "
            "differ); pass another --run name, or remove the folder to start it over"
        )


def finished_split(folder: Path, index: int) -> dict[str, Any] | None:
    """What ``split-NN.json`` recorded, when it is there and the split's checkpoint
    reads whole (a truncated or damaged one is trained again, as its readers advise)."""
    from safetensors.torch import load_file

    path = folder / SPLIT_RESULT.format(index)
    if not (path.is_file() and (folder / CHECKPOINT.format(index)).is_file()):
        return None
    try:
        load_file(str(folder / CHECKPOINT.format(index)))
    except Exception:  # noqa: BLE001 - unreadable in any way: not finished
        return None
    return json.loads(path.read_text())


def _frame_record(frame: pd.DataFrame) -> dict[str, Any]:
    """A predictions frame as JSON: columns, rows and dtypes (so it reads back exactly)."""
    record = frame.to_dict(orient="split", index=False)
    return {**record, "dtypes": [str(t) for t in frame.dtypes]}


def _frame(record: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(record["data"], columns=record["columns"])
    return frame.astype(dict(zip(record["columns"], record["dtypes"], strict=True)))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
