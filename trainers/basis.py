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

from qfeat.cache.basis import Basis, Selection, Want, same_configs, select_basis, stage_sets
from qfeat.pipeline.config import default_preset
from qfeat.pipeline.settings import Settings
from qfeat.trainers.registry import TRAINERS, check_cached_dataset
from qfeat.trainers.settings import describe_settings, trainer_settings


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


def named(req, needed: list[str]) -> tuple[Want | None, str]:
    """The ``want`` of the set ``--preset`` and stage ``--set`` values resolve to (None
    when neither is given: the newest complete set), and those options in words. The
    stage configs are resolved as ``qfeat features`` resolves them (no --preset: the
    dataset's default preset, as there)."""
    from qfeat.pipeline.resolution import resolve_stage_configs
    from qfeat.pipeline.stages import get_stage, stage_settings

    sets = stage_sets(req.sets, set(stage_settings()))
    if req.preset is None and not sets:
        return None, ""
    preset = req.preset or default_preset(req.dataset)
    words = [f"--preset {preset}", *(f"--set {s}" for s in sets)]
    constants = {name: get_stage(name).constants() for name in needed}
    want = same_configs(resolve_stage_configs(preset, sets, needed), constants)
    return want, " ".join(words)


def training_basis(
    req,
    cls: type[Settings],
    trainer: str,
    needed: list[str],
    *,
    fits: Callable[[Basis], bool] | None = None,
    unfit: str = "",
) -> TrainingBasis:
    """See the module docstring; ``req`` is a :class:`qfeat.trainers.protocol.TrainRequest`."""
    trainer_settings(cls, req.preset or default_preset(req.dataset), req.sets, req.epochs)
    check_cached_dataset(TRAINERS[trainer], req.cache_dir, req.dataset)
    want, wanted = named(req, needed)
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
