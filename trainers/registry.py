"""The trainers qfeat knows, and what every command needs from each of them.

``train``, ``evaluate``, ``predict``, ``report``, ``runs``, ``table`` and ``make train``
look a trainer up here instead of testing its name; ``qfeat train NAME`` is built from
the entry by one helper (:func:`qfeat.cli.train.train_command`). The hooks are
``"module:attribute"`` strings imported only when used, so looking a trainer up (e.g. to
check a file's modality before any model is built) stays cheap. Adding a trainer = its
own modules + one entry in :data:`TRAINERS`.

The contract does not assume gradient descent: ``train`` fits each split through the
shared protocol (:mod:`qfeat.trainers.protocol`, which owns splits, checkpoints, resume,
metrics, predictions and the run folder) by handing it a ``fit(split, seed, on_epoch)
-> FittedSplit`` (:mod:`qfeat.trainers.fitted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from qfeat.errors import DatasetError, OptionError
from qfeat.pipeline.images import IMAGE_EXTENSIONS
from qfeat.pipeline.video.reader import VIDEO_EXTENSIONS

HOOKS = ("request", "settings", "train", "evaluate", "scorer", "details", "summary_rows", "variant")


@dataclass(frozen=True)
class Trainer:
    """One trainer. Hooks (``"module:attribute"``):

    - ``request``: its :class:`qfeat.trainers.protocol.TrainRequest` subclass; the fields
      it adds with :func:`qfeat.trainers.protocol.option` metadata are its own
      ``qfeat train NAME`` options;
    - ``settings``: its preset section's :class:`qfeat.pipeline.settings.Settings` class
      (``--set NAME.key=value``; ``--epochs`` exists where it has an ``epochs`` field);
    - ``train(request, log, progress) -> (run folder, metrics)``: every split through
      :func:`qfeat.trainers.protocol.train_and_record`;
    - ``evaluate(run, dataset, cache_dir, device) -> dict``: its checkpoints scored on
      another dataset's cache (``qfeat evaluate``; ``run`` is a
      :class:`qfeat.trainers.runfolder.RunFolder`);
    - ``scorer(run, states, device)``: an object with ``modality``, ``extensions`` and
      ``raw(items)`` scoring files live (``qfeat predict``);
    - ``details(run, samples, cache_dir) -> dict``: the report's per-item views (may be
      empty);
    - ``summary_rows(config: RunConfig) -> list[[label, value]]``: what the report's
      summary table says about the trainer's own settings;
    - ``variant(config: RunConfig) -> str``: the run's variant in one phrase (ablation,
      mode) for ``qfeat table`` and the training summary.
    """

    name: str
    modality: str  # the datasets it trains on: "image" or "video"
    extensions: tuple[str, ...]  # the files `qfeat predict` scores with its runs
    help: str  # the `qfeat train NAME` command's help
    request: str
    settings: str
    train: str
    evaluate: str
    scorer: str
    details: str
    summary_rows: str
    variant: str
    default: bool = False  # the trainer `make train` and the docs use for its modality

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
            help="Train the RSA head (RSFIQA) on a dataset's cached image features, on every "
            "split.",
            request="qfeat.trainers.settings:RsaRequest",
            settings="qfeat.trainers.settings:RSASettings",
            train="qfeat.trainers.rsa_train:train_rsa",
            evaluate="qfeat.trainers.rsa_train:evaluate_on",
            scorer="qfeat.trainers.predict_rsa:RsaScorer",
            details="qfeat.trainers.report.rsa_views:image_details",
            summary_rows="qfeat.trainers.report.rsa_views:summary_rows",
            variant="qfeat.trainers.rsa_train:variant",
            default=True,
        ),
        Trainer(
            name="scma",
            modality="video",
            extensions=VIDEO_EXTENSIONS,
            help="Train SCMA (Q-CLIP) on a dataset's cached clip features, on every split.",
            request="qfeat.trainers.settings:ScmaRequest",
            settings="qfeat.trainers.settings:SCMASettings",
            train="qfeat.trainers.scma_train:train_scma",
            evaluate="qfeat.trainers.scma_train:evaluate_on",
            scorer="qfeat.trainers.predict_scma:ScmaScorer",
            details="qfeat.trainers.report.scma_views:video_details",
            summary_rows="qfeat.trainers.report.scma_views:summary_rows",
            variant="qfeat.trainers.scma_train:variant",
            default=True,
        ),
        Trainer(
            name="probe",
            modality="any",
            extensions=(*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS),
            help="Fit the ridge-regression probe (the baseline every head must beat) on a "
            "dataset's pooled cached features, on every split.",
            request="qfeat.trainers.probe_settings:ProbeRequest",
            settings="qfeat.trainers.probe_settings:ProbeSettings",
            train="qfeat.trainers.probe:train_probe",
            evaluate="qfeat.trainers.probe:evaluate_on",
            scorer="qfeat.trainers.probe_live:ProbeScorer",
            details="qfeat.trainers.probe:details",
            summary_rows="qfeat.trainers.probe:summary_rows",
            variant="qfeat.trainers.probe:variant",
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


EXTENSIONS = {"image": IMAGE_EXTENSIONS, "video": VIDEO_EXTENSIONS}


def run_kind(config, run_dir: Path | None = None) -> tuple[str, tuple[str, ...]]:
    """``(modality, file extensions)`` of a run from its
    :class:`qfeat.trainers.runconfig.RunConfig`: the recorded modality, else (runs made
    before it was recorded) the trainer's."""
    trainer = get_trainer(config.trainer, run_dir)
    modality = config.modality or trainer.modality
    if modality not in EXTENSIONS:
        raise DatasetError(f"{run_dir or 'the run'} records no image or video modality")
    extensions = trainer.extensions if trainer.modality == modality else EXTENSIONS[modality]
    return modality, extensions


def trainer_for(modality: str) -> Trainer:
    """The default trainer for a dataset modality (what ``make train`` runs): the one entry
    of that modality marked ``default`` (:func:`check_registry` keeps it to one)."""
    defaults = [t for t in TRAINERS.values() if t.default and t.modality == modality]
    if len(defaults) != 1:
        raise DatasetError(f"no default trainer for {modality} datasets ({check_registry()})")
    return defaults[0]


def trains_on(trainer: Trainer, modality: str) -> bool:
    """Whether ``trainer`` trains on datasets of ``modality`` (``any``: both)."""
    return trainer.modality in (modality, "any")


def check_registry() -> str:
    """``"ok"``, or what is wrong with :data:`TRAINERS`: each modality needs exactly one
    default trainer, and a trainer of ``any`` modality cannot be a default."""
    problems = []
    for modality in ("image", "video"):
        names = [t.name for t in TRAINERS.values() if t.default and t.modality == modality]
        if len(names) != 1:
            problems.append(f"{len(names)} default {modality} trainers ({', '.join(names)})")
    problems += [f"{t.name} is 'any' and default" for t in TRAINERS.values()
                 if t.default and t.modality == "any"]  # fmt: skip
    return "; ".join(problems) or "ok"


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
        _refuse_unknown_name(dataset, names, cache_dir, cached)
        raise DatasetError(
            f"no dataset '{dataset}' in the cache at {cache_dir} ({cached}); compute it "
            f"with `qfeat features {dataset}` (as the name it was stored under), or check "
            "the name with `qfeat cache ls`"
        )
    found = {STAGES[p.name].modality for p in (cache_dir / dataset).iterdir() if p.name in STAGES}
    if found and not any(trains_on(trainer, m) for m in found):
        other = trainer_for(found.pop())
        raise DatasetError(
            f"'{dataset}' is cached as {_a(other.modality)} dataset and {trainer.name} works on "
            f"{trainer.modality} datasets; use `qfeat train {other.name} {dataset}` (or a "
            f"{other.name} run with `qfeat evaluate`)"
        )


def _refuse_unknown_name(dataset: str, names: list[str], cache_dir: Path, cached: str) -> None:
    """A name that is neither cached nor an adapter is a usage error (exit 2), with the
    closest cached or adapter name (``dmeo`` -> ``demo``); an adapter's own name that is
    not computed yet is left to the caller's "compute it" advice (exit 1)."""
    import difflib

    from qfeat.pipeline.datasets import REGISTRY as ADAPTERS

    if dataset in ADAPTERS:
        return
    close = difflib.get_close_matches(dataset, [*names, *ADAPTERS], n=1, cutoff=0.6)
    if close:
        raise OptionError(
            f"no dataset '{dataset}' in the cache at {cache_dir}; did you mean {close[0]}? "
            f"({cached})"
        )


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


__all__ = [
    "TRAINERS",
    "Trainer",
    "check_cached_dataset",
    "get_trainer",
    "check_registry",
    "run_kind",
    "trainer_for",
    "trainer_of_run",
    "trains_on",
]
