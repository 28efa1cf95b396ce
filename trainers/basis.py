"""Which cache a trainer reads, and its settings: what every ``qfeat train`` calls first.

:func:`training_basis` checks the trainer's ``--set`` values (usage errors before any
cache look-up), picks the run's basis (:func:`qfeat.cache.basis.select_basis`: the set
``--preset`` and the stage ``--set`` values name, ``--basis ID``, or the newest complete
set) and resolves the trainer's settings from ``--preset``, else the preset the basis
was made with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qfeat.cache.basis import Basis, Selection, Want, matches, select_basis, stage_sets
from qfeat.pipeline.config import default_preset
from qfeat.trainers.registry import TRAINERS, check_cached_dataset
from qfeat.trainers.settings import LoopSettings, describe_settings, trainer_settings


@dataclass(frozen=True)
class TrainingBasis:
    """The run's basis, its preset (and why) and the trainer's resolved settings."""

    selection: Selection
    preset: str
    why: str
    settings: dict[str, Any]

    @property
    def basis(self) -> Basis:
        return self.selection.basis

    def lines(self, head: tuple[str, ...]) -> list[str]:
        """What the trainer says first: settings, the basis, the other sets (if any)."""
        out = [describe_settings(self.preset, self.why, self.settings, head)]
        out.append(f"cache basis {self.basis.id}: {self.basis.label()}")
        if self.selection.note:
            out.append(self.selection.note)
        return out


def named(req) -> tuple[Want | None, str]:
    """The ``want`` of the sets ``--preset`` and stage ``--set`` values name (None when
    neither is given), and those options in words."""
    from qfeat.pipeline.stages import stage_settings

    sets = stage_sets(req.sets, set(stage_settings()))
    if req.preset is None and not sets:
        return None, ""
    words = ([f"--preset {req.preset}"] if req.preset else []) + [f"--set {s}" for s in sets]
    return matches(sets, req.preset), " ".join(words)


def training_basis(
    req,
    cls: type[LoopSettings],
    trainer: str,
    needed: list[str],
    *,
    fits: Callable[[Basis], bool] | None = None,
    unfit: str = "",
) -> TrainingBasis:
    """See the module docstring; ``req`` is a :class:`qfeat.trainers.protocol.TrainRequest`."""
    trainer_settings(cls, req.preset or default_preset(req.dataset), req.sets, req.epochs)
    check_cached_dataset(TRAINERS[trainer], req.cache_dir, req.dataset)
    want, wanted = named(req)
    selection = select_basis(
        req.cache_dir,
        req.dataset,
        needed,
        want=want,
        wanted=wanted,
        basis_id=req.basis,
        trainer=f"the {trainer} trainer",
        fits=fits,
        unfit=unfit,
    )
    if req.preset:
        preset, why = req.preset, "--preset"
    elif selection.basis.preset:
        preset = selection.basis.preset
        why = f"the preset {req.dataset}'s {needed[0]} cache was made with"
    else:
        preset, why = default_preset(req.dataset), f"the default for {req.dataset}"
    settings = trainer_settings(cls, preset, req.sets, req.epochs)
    return TrainingBasis(selection, preset, why, settings)
