"""The trainers qfeat knows, and what every command needs from each of them.

``train``, ``evaluate``, ``predict``, ``report`` and ``make train`` look a trainer up here
instead of testing its name. The hooks are ``"module:attribute"`` strings imported only
when used, so looking a trainer up (e.g. to check a file's modality before any model is
built) stays cheap. Adding a trainer = its own modules + one entry in :data:`TRAINERS`
(+ its ``qfeat train NAME`` command in ``cli/train.py``, which parses its options).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from qfeat.errors import DatasetError
from qfeat.pipeline.images import IMAGE_EXTENSIONS
from qfeat.pipeline.video.reader import VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Trainer:
    """One trainer. Hook signatures:

    - ``evaluate(run, dataset, cache_dir, device) -> dict``: its checkpoints scored on
      another dataset's cache (``qfeat evaluate``; ``run`` is a
      :class:`qfeat.trainers.runfolder.RunFolder`);
    - ``scorer(run, states, device)``: an object with ``modality``,
      ``extensions`` and ``raw(files, progress)`` scoring files live (``qfeat predict``);
    - ``details(run, samples, cache_dir) -> dict``: the report's per-item views;
    - ``summary_rows(config: RunConfig) -> list[[label, value]]``: what the report's summary table
      says about the trainer's own settings.
    """

    name: str
    modality: str  # the datasets it trains on: "image" or "video"
    extensions: tuple[str, ...]  # the files `qfeat predict` scores with its runs
    evaluate: str
    scorer: str
    details: str
    summary_rows: str

    def hook(self, name: str) -> Any:
        module, _, attribute = getattr(self, name).partition(":")
        return getattr(import_module(module), attribute)


TRAINERS: dict[str, Trainer] = {
    t.name: t
    for t in (
        Trainer(
            name="rsa",
            modality="image",
            extensions=IMAGE_EXTENSIONS,
            evaluate="qfeat.trainers.rsa_train:evaluate_on",
            scorer="qfeat.trainers.predict_rsa:RsaScorer",
            details="qfeat.trainers.report.images:image_details",
            summary_rows="qfeat.trainers.report.images:summary_rows",
        ),
        Trainer(
            name="scma",
            modality="video",
            extensions=VIDEO_EXTENSIONS,
            evaluate="qfeat.trainers.scma_train:evaluate_on",
            scorer="qfeat.trainers.predict_scma:ScmaScorer",
            details="qfeat.trainers.report.videos:video_details",
            summary_rows="qfeat.trainers.report.videos:summary_rows",
        ),
    )
}


def get_trainer(name: str | None, run_dir: Path | None = None) -> Trainer:
    """The trainer called ``name`` (as a run's ``config.json`` records it)."""
    if name in TRAINERS:
        return TRAINERS[name]
    where = f"{run_dir} is a run of" if run_dir else "unknown trainer:"
    raise DatasetError(
        f"{where} an unknown trainer ({name!r}); this qfeat knows {', '.join(TRAINERS)}"
    )


def trainer_of_run(run_dir: Path) -> Trainer:
    """The trainer a run folder was made by, from its ``config.json`` alone."""
    from qfeat.trainers.runfolder import RunFolder

    return get_trainer(RunFolder(run_dir).config.trainer, run_dir)


def trainer_for(modality: str) -> Trainer:
    """The trainer for a dataset modality (what ``make train`` runs)."""
    for trainer in TRAINERS.values():
        if trainer.modality == modality:
            return trainer
    raise DatasetError(f"no trainer for {modality} datasets; trainers: {', '.join(TRAINERS)}")


def check_cached_dataset(trainer: Trainer, cache_dir: Path, dataset: str) -> None:
    """Refuse, with advice that leads somewhere, a dataset name that is not in the cache
    (listing the names that are) or a dataset of the other modality (naming the trainer
    that fits it) before a trainer or ``qfeat evaluate`` looks for its stages."""
    from qfeat.cache.layout import items_path
    from qfeat.pipeline.stages import STAGES

    cache_dir = Path(cache_dir)
    if not items_path(cache_dir, dataset).is_file():
        names = sorted(
            p.name for p in cache_dir.glob("*") if items_path(cache_dir, p.name).is_file()
        )
        cached = f"cached: {', '.join(names)}" if names else "it holds no dataset yet"
        raise DatasetError(
            f"no dataset '{dataset}' in the cache at {cache_dir} ({cached}); compute it "
            f"with `qfeat features {dataset}` (as the name it was stored under), or check "
            "the name with `qfeat cache ls`"
        )
    found = {STAGES[p.name].modality for p in (cache_dir / dataset).iterdir() if p.name in STAGES}
    if found and trainer.modality not in found:
        other = trainer_for(found.pop())
        raise DatasetError(
            f"'{dataset}' is cached as {_a(other.modality)} dataset and {trainer.name} works on "
            f"{trainer.modality} datasets; use `qfeat train {other.name} {dataset}` (or a "
            f"{other.name} run with `qfeat evaluate`)"
        )


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


__all__ = [
    "TRAINERS",
    "Trainer",
    "check_cached_dataset",
    "get_trainer",
    "trainer_for",
    "trainer_of_run",
]
