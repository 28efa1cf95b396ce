"""What every ``qfeat train NAME`` command takes (a light module: the CLI builds each
trainer's command from these classes without importing torch)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfeat.trainers.runconfig import RunConfig
from qfeat.trainers.runfolder import RunFolder


def option(flag: str | None = None, *, help: str, invert: bool = False) -> dict[str, Any]:
    """Field metadata making a :class:`TrainRequest` subclass's field a ``qfeat train
    NAME`` option: ``flag`` (default ``--field-name``), its ``help``; ``invert`` for a
    ``--no-x`` flag that sets a default-true field to false."""
    return {"cli": {"flag": flag, "help": help, "invert": invert}}


@dataclass
class TrainRequest:
    """What every ``qfeat train NAME`` command takes. A trainer's subclass adds its own
    options as fields with :func:`option` metadata (other added fields are internal)."""

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
    basis: str | None = None  # --basis ID: the set of cached stages to read (cache/basis.py)

    def __post_init__(self) -> None:
        if self.run is not None:
            RunFolder.create(self.runs_dir, self.run)  # a usage error before any work

    def run_config(self, trainer: str, **fields) -> RunConfig:
        """The run's config.json: this request's dataset, cache, splits and seed, plus
        the trainer's own ``fields`` (:class:`RunConfig`'s other fields)."""
        return RunConfig(
            trainer=trainer,
            dataset=self.dataset,
            cache_dir=str(self.cache_dir),
            splits=self.splits,
            seed=self.seed,
            **fields,
        )

    def folder(self, trainer: str) -> RunFolder:
        """The run folder: ``--run`` NAME, else ``<trainer>-<dataset>-<timestamp>``."""
        name = self.run or f"{trainer}-{self.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        return RunFolder.create(self.runs_dir, name)


__all__ = ["TrainRequest", "option"]
