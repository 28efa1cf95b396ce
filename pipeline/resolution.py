"""What a ``qfeat features`` configuration resolves to, without running anything.

- :func:`manifest_config`: a stage's config as its manifest records (and fingerprints) it;
- :func:`resolve_stage_configs`: every named stage's config for a preset and ``--set``
  values, resolved as a run resolves them (no dataset, model or weights touched): what
  readers compare cached manifests with (:mod:`qfeat.trainers.basis`);
- :func:`own_sets`: the ``--set`` values a stage's manifest records;
- :func:`data_version`: the generator version a demo set's manifests record;
- :func:`upstream_folder`: the cached upstream stage a run builds on when that stage is
  not part of the run (``--stages text``, ``qfeat stage text``): one made with this
  configuration, never whichever ran last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qfeat.cache.fingerprint import canonical_json
from qfeat.cache.reader import CacheMissing, Stage, list_stages
from qfeat.pipeline.config import resolve_config


def manifest_config(config: dict[str, Any], stage: str) -> dict[str, Any]:
    """``stage``'s config as its manifest records and fingerprints it (seed included)."""
    return {**config[stage], "seed": config.get("seed", 0)}


def resolve_stage_configs(preset: str, sets: list[str], stages: list[str]) -> dict[str, dict]:
    """What ``qfeat features --preset PRESET --set ...`` would record as each stage's
    config (``stages``), resolved exactly as a run resolves it."""
    from qfeat.pipeline.stages import stage_settings

    config = resolve_config(preset, sets, stage_settings())
    return {name: manifest_config(config, name) for name in stages}


def own_sets(sets: list[str], stage: str) -> list[str]:
    """The ``--set`` values of ``stage``'s own section and the top-level ones (seed)."""
    keys = [s.partition("=")[0].strip() for s in sets]
    return [s for s, k in zip(sets, keys, strict=True) if "." not in k or k.split(".")[0] == stage]


def data_version(adapter) -> dict[str, int]:
    """``{"data_version": n}`` for generated sets (a regenerated set gets new caches)."""
    version = adapter.data_version
    return {} if version is None else {"data_version": version}


def upstream_folder(
    cache_dir: Path,
    dataset: str,
    up: str,
    config: dict[str, Any],
    items_sha256: str,
    *,
    needed_by: tuple[str, str],
) -> Stage:
    """The complete cached ``up`` stage made with this run's ``config`` (the resolved
    configuration of every stage): for the same item list when there is one, else the
    newest. ``needed_by``: the stage that reads it and the dataset as the user named it.
    Raises :class:`CacheMissing` naming the command when none was."""
    stage, given = needed_by
    wanted = canonical_json(manifest_config(config, up))
    stages = list_stages(cache_dir, dataset, up)
    if not any(s.complete for s in stages):
        raise CacheMissing(
            f"stage '{stage}' needs '{up}' of {dataset}, which is not cached; make it "
            f"with `qfeat stage {up} {given}` or `qfeat features {given}`"
        )
    fits = [s for s in stages if s.complete and canonical_json(s.manifest.get("config")) == wanted]
    same_items = [s for s in fits if s.manifest.get("items_sha256") == items_sha256]
    if same_items or fits:
        return (same_items or fits)[-1]
    cached = ", ".join(f"{s.fingerprint} ({s.manifest.get('preset')})" for s in stages) or "none"
    raise CacheMissing(
        f"stage '{stage}' needs '{up}' of {dataset} made with this configuration (preset "
        f"{config.get('preset')} and these --set values), which is not cached (cached: "
        f"{cached}); compute both in one run: `qfeat features {given} --stages {up},{stage}` "
        "with the same options"
    )
