"""Score new images or videos with a trained run (what ``qfeat predict`` calls).

::

    from qfeat.trainers.predict import load_run

    model = load_run("runs/rsa-demo-20250101-120000", device="cpu")
    results = model.score(["a.jpg", "b.png"])  # [Prediction(path, score, score_01, status, error)]
    [r.as_dict() for r in results]  # what `qfeat predict --json` prints

The run's cache stages run live on the files, in-process (no Dask, no cache writes),
with exactly the stage configs, seeds and model identities recorded in the run's
``config.json`` (:mod:`qfeat.trainers.predict_live`); a stage whose model differs from the
recorded one is refused. Then every split's checkpoint (``split-NN.safetensors``) scores
each file:

- ``raw``: the head's output (the scale ``predictions.csv`` ``pred`` is on);
- mapped to the training dataset's MOS scale by a monotonic map fitted on that split's
  own test predictions in ``predictions.csv`` (pred -> mos: the 4-parameter logistic of
  :mod:`qfeat.trainers.metrics`, or a straight line when that fit fails), clipped to the
  dataset's MOS scale;
- ``score``: the mean over splits of the mapped scores (native MOS units);
- ``score_01``: ``score`` on 0..1 like the cache's ``mos_01`` (1 = best, clipped), from
  the run's ``mos_range`` (or, for older runs, recovered from the training cache's
  ``items.parquet``); None when neither is available.

Files are processed in chunks of ``batch_size`` (default 32 images or 8 videos) in the
given order; the same files always give the same scores (seeded models in eval mode).
A file scored in a different chunk of files may differ by float rounding only (about
1e-6 relative: batch sizes change how CPU kernels sum). Each file's item id is its
absolute path, so the ``random`` frame sampler picks other frames for a video than it
did in the training cache (whose ids are dataset-relative); the default ``difference``
sampler does not depend on the id.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qfeat.errors import DatasetError
from qfeat.trainers.metrics import Mapping, fit_mapping
from qfeat.trainers.registry import get_trainer, run_kind
from qfeat.trainers.runfolder import RunFolder
from qfeat.trainers.runinfo import dataset_scale, normalise_score

log = logging.getLogger(__name__)

KEYS = ("path", "score", "score_01", "status", "error")


@dataclass
class Prediction:
    """One file's result; :meth:`as_dict` has exactly the keys of ``--json``."""

    path: str
    score: float | None  # mean over splits of the mapped scores, native MOS scale
    score_01: float | None  # 0..1, 1 = best; None without a known scale
    status: str  # "ok" or the stage's error kind (missing, empty_file, decode_error, ...)
    error: str | None  # None, or the reason

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_mappings(
    predictions: pd.DataFrame, n_splits: int, scale: dict[str, Any] | None = None
) -> list[Mapping]:
    """One :func:`fit_mapping` per split, on its rows of the main test set (``test``, or
    the first test-set name, as in ``metrics.json``), clipped to the dataset's ``scale``
    (``{"min", "max"}``) when known, else to each split's test MOS range."""
    if predictions.empty:  # a run whose splits had no test item (too few content groups)
        raise DatasetError(
            "the run has no test results (its predictions.csv is empty), so its scores "
            "cannot be calibrated; train it again on a cache with at least 3 content groups"
        )
    names = predictions["split"].str.rsplit("@", n=1)
    test_sets = sorted(set(names.str[0]))
    main = "test" if "test" in test_sets else test_sets[0]
    bounds = (float(scale["min"]), float(scale["max"])) if scale else None
    out = []
    for index in range(n_splits):
        rows = predictions[(names.str[0] == main) & (names.str[1] == str(index))]
        if rows.empty:
            raise DatasetError(
                f"predictions.csv has no {main}@{index} rows to calibrate split {index}"
            )
        out.append(fit_mapping(rows["pred"].to_numpy(), rows["mos"].to_numpy(), bounds))
    return out


def expand_paths(patterns: Iterable[str], extensions: tuple[str, ...]) -> list[Path]:
    """Files to score, in a deterministic order, each once (by real path).

    A folder gives its files with one of ``extensions`` (recursively, sorted); a pattern
    with ``*``, ``?`` or ``[`` is expanded like a shell glob with ``**`` for any depth
    (sorted; folders among the matches are walked as above); anything else is taken as
    a file even when it does not exist (it is then reported as ``missing``). Walks and
    ``**`` never descend into symlinked folders (a ``loop -> .`` link would repeat every
    file, or never end), so one file reached two ways is scored once.
    """

    def walk(folder: Path) -> list[Path]:
        return sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions
        )

    out: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            out.extend(walk(path))
        elif glob.has_magic(pattern):
            for match in _glob(path):
                out.extend(walk(match) if match.is_dir() and not match.is_symlink() else [match])
        else:
            out.append(path)
    seen: set[str] = set()
    unique = []
    for p in out:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _glob(pattern: Path) -> list[Path]:
    """``pattern``'s matches, sorted: pathlib's glob from the folder before the first part
    with a wildcard (it does not follow symlinked folders through ``**``)."""
    parts = pattern.parts
    first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    anchor = Path(*parts[:first]) if first else Path(".")
    rest = str(Path(*parts[first:]))
    return sorted(anchor.glob(rest)) if anchor.is_dir() else []


def file_kind(run_dir: Path) -> tuple[str, tuple[str, ...]]:
    """``(modality, file extensions)`` a run scores, from its ``config.json`` alone."""
    return run_kind(RunFolder(run_dir).config, run_dir)


class RunModel:
    """A trained run ready to score files; build it with :func:`load_run`."""

    def __init__(self, run_dir: Path | RunFolder, device: str = "cpu"):
        self.run = run_dir if isinstance(run_dir, RunFolder) else RunFolder(run_dir)
        self.run_dir = self.run.path
        self.config = self.run.config
        self.trainer = self.config.trainer
        states = self.run.states()
        self.mos_range = self.config.mos_range or self._items_range()
        self.mappings = split_mappings(self.run.predictions, len(states), self.mos_range)
        scorer = get_trainer(self.trainer, self.run_dir).hook("scorer")
        self.scorer = scorer(self.run, states, device)
        self.modality: str = self.scorer.modality
        self.extensions: tuple[str, ...] = self.scorer.extensions
        self.batch_size = 32 if self.modality == "image" else 8

    def _items_range(self) -> dict[str, Any] | None:
        """Older runs: the scale recovered from the training cache's items.parquet."""
        from qfeat.cache.items import read_items

        try:
            cache_dir, dataset = Path(self.config.cache_dir or ""), self.config.dataset
            items = read_items(cache_dir, dataset)
        except (DatasetError, OSError) as exc:
            log.warning("no MOS range for %s (%s): score_01 will be empty", self.run_dir, exc)
            return None
        return dataset_scale(cache_dir, dataset, items)

    def raw(
        self,
        paths: Iterable[str | os.PathLike],
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[tuple[str, str | None]], np.ndarray]:
        """``(statuses, raw [splits, files])``: each file's ``(status, error)`` and every
        split's raw head output (NaN for failed files), files in the given order.
        ``progress(n)`` is called after each chunk with the number of files it held."""
        files = [str(p) for p in paths]
        size = batch_size or self.batch_size
        statuses: list[tuple[str, str | None]] = []
        parts = []
        for start in range(0, len(files), size):
            chunk = files[start : start + size]
            items = [{"item_id": os.path.abspath(f), "path": f} for f in chunk]
            log.info("scoring files %d-%d of %d", start + 1, start + len(chunk), len(files))
            s, r = self.scorer.raw(items)
            statuses.extend(s)
            parts.append(r)
            if progress is not None:
                progress(len(chunk))
        raw = np.concatenate(parts, axis=1) if parts else np.zeros((len(self.mappings), 0))
        return statuses, raw

    def score(
        self,
        paths: Iterable[str | os.PathLike],
        batch_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[Prediction]:
        """One :class:`Prediction` per path, in order (see the module docstring)."""
        files = [str(p) for p in paths]
        statuses, raw = self.raw(files, batch_size, progress)
        mapped = np.stack([m(r) for m, r in zip(self.mappings, raw, strict=True)])
        out = []
        for i, (path, (status, error)) in enumerate(zip(files, statuses, strict=True)):
            if status != "ok":
                out.append(Prediction(path, None, None, status, error))
                continue
            if not np.all(np.isfinite(mapped[:, i])):
                out.append(Prediction(path, None, None, "error", "non-finite model output"))
                continue
            score = float(mapped[:, i].mean())
            out.append(Prediction(path, score, normalise_score(score, self.mos_range), "ok", None))
        return out


def load_run(
    run: str | os.PathLike, device: str = "cpu", runs_dir: str | os.PathLike | None = None
) -> RunModel:
    """Load run ``run`` (a folder, or a name under ``runs_dir`` / ``$QFEAT_RUNS_DIR``)
    with its stages' models on ``device`` (``auto``, ``cpu`` or ``cuda``); raises
    DatasetError when the run cannot score files (e.g. a stage model that differs from
    the recorded one)."""
    from qfeat.pipeline.cluster import resolve_device

    folder = RunFolder.find(run, Path(runs_dir) if runs_dir else None)
    device = resolve_device(device)
    if device == "cpu":
        import torch

        from qfeat.pipeline.threads import thread_count

        torch.set_num_threads(thread_count())  # the CPUs this process may use
    return RunModel(folder, device)
