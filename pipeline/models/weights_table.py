"""What files a configuration's models need, and the check of each given one.

One row per weights setting: the architecture the configuration asks for, the file (or
folder) its publisher ships, the format, where the official release lives, its size
(computed from the parameter count built on the meta device), and, when a path is given,
whether that file is this architecture (:mod:`qfeat.pipeline.models.weights_check`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qfeat.errors import DatasetError
from qfeat.pipeline.models import weights_check as wc
from qfeat.pipeline.models.source import local_dir, parse_source
from qfeat.pipeline.models.weights_facts import LOCAL_DIR_ROW


def weights_stages() -> dict[str, str]:
    """Stage -> its weights setting, for every stage that declares weights facts
    (``Stage.weights``), in the registry's order."""
    from qfeat.pipeline.stages import STAGES

    return {n: c.weights_setting for n, c in STAGES.items() if c.weights is not None}


def _facts(stage: str):
    from qfeat.pipeline.stages import get_stage

    return get_stage(stage).weights


@dataclass
class Need:
    setting: str  # e.g. "regions.checkpoint"
    architecture: str  # what the configuration asks for, e.g. "SAM vit_h"
    official: str  # the file or folder as its publisher ships it
    format: str
    where: str
    given: str  # the setting's value now
    parameters: int | None = None
    status: str = ""  # ok | wrong | missing | not set | random | built in | hub
    message: str = ""
    sha256: str | None = None
    bytes_per_parameter: int = 4

    @property
    def size_gb(self) -> float | None:
        if self.parameters is None:
            return None
        return self.parameters * self.bytes_per_parameter / 1e9

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "size_gb": self.size_gb}


def needs(cfg: dict[str, Any], stages: list[str]) -> list[Need]:
    """A row for each weights setting of ``stages`` in the resolved configuration."""
    rows = []
    for stage, key in weights_stages().items():
        if stage not in stages:
            continue
        section = cfg.get(stage) or {}
        arch = str(section.get("model", ""))
        if _facts(stage).local_dir and arch.startswith("local-dir:"):  # the folder: weights
            rows.append(Need(f"{stage}.model", **asdict(LOCAL_DIR_ROW), given=arch))
            continue
        row = _facts(stage).row(arch)
        rows.append(Need(f"{stage}.{key}", **asdict(row), given=str(section.get(key, ""))))
    return rows


def check(need: Need, cfg: dict[str, Any]) -> Need:
    """Fill ``need``'s status, parameter count and, for a good local file, its sha256."""
    stage = need.setting.split(".")[0]
    facts, section = _facts(stage), cfg[stage]
    arch = str(section["model"])
    if facts.local_dir and arch.startswith("local-dir:"):
        return _check_local_dir(need, str(section["pretrained"]))
    if facts.builtin(arch):
        need.status, need.message = "built in", "no file needed: a toy model"
        return need
    source = parse_source(need.given, allow_hub=facts.hub)
    try:
        need.parameters = facts.parameters(arch, section)
    except Exception as exc:  # noqa: BLE001 - an architecture the library does not know
        need.status, need.message = "wrong", f"unknown architecture {arch}: {exc}"
        return need
    if source.kind in ("none", "random", "hub"):
        need.status = {"none": "not set", "random": "random", "hub": "hub"}[source.kind]
        need.message = {"none": f"pass --set {need.setting}=/path/{need.official.split(' ')[0]}",
                        "random": "seeded random weights (benchmarks and tests only)",
                        "hub": "downloaded only when a run uses it"}[source.kind]  # fmt: skip
        return need
    if source.kind == "missing":
        need.status, need.message = "missing", f"{need.given} does not exist"
        return need
    try:
        need.parameters = facts.check_path(arch, source.path, section) or need.parameters
    except DatasetError as exc:
        need.status, need.message = "wrong", str(exc)
        return need
    need.status, need.sha256 = "ok", _digest(arch, source.path)
    need.message = f"matches {need.architecture}"
    return need


def _check_local_dir(need: Need, pretrained: str) -> Need:
    """An open_clip ``local-dir:`` folder: there, with a config open_clip builds and a
    weights file of that config's shapes (the file open_clip would load); a
    ``pretrained`` file given as well is refused as the stage refuses it."""
    folder = local_dir(need.given)
    if not folder.is_dir():
        need.status, need.message = "missing", f"{folder} does not exist"
        return need
    try:
        need.parameters, weights = wc.check_open_clip_folder(need.given, need.setting, pretrained)
    except DatasetError as exc:  # said after "setting=given: " already
        need.status = "wrong"
        need.message = str(exc).removeprefix(f"{need.setting}={need.given}: ")
        return need
    need.status, need.sha256 = "ok", _digest(need.given, folder)
    need.message = f"{weights.name} matches open_clip_config.json"
    return need


def _digest(arch: str, path: Path) -> str:
    """The file's sha256 as the stages record it (remembered for the next run); for a
    folder, one digest over its files' digests."""
    from qfeat.cache.fingerprint import model_identity

    digest = model_identity(arch, path)["sha256"]
    if isinstance(digest, dict):
        digest = hashlib.sha256(json.dumps(digest, sort_keys=True).encode()).hexdigest()
    return digest
