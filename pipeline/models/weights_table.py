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
from qfeat.pipeline.regions import SAM2_CHECKPOINTS, SAM_CHECKPOINTS

SAM_FILES = {**SAM_CHECKPOINTS, **SAM2_CHECKPOINTS}  # the official file of each regions.model
SAM_WHERE = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
SAM2_WHERE = "https://github.com/facebookresearch/sam2#model-description"
TORCHVISION_FILES = {"resnet50": "resnet50-11ad3fa6.pth", "resnet18": "resnet18-f37072fd.pth"}
# open_clip's own hub copies of the weights the paper preset names
OPEN_CLIP_WHERE = {
    # ViT-B-16 is open_clip's GELU model: OpenAI's weights need ViT-B-16-quickgelu
    "ViT-B-16": "https://huggingface.co/laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
    "ViT-B-16-quickgelu": "https://huggingface.co/timm/vit_base_patch16_clip_224.openai",
    "PE-Core-L-14-336": "https://huggingface.co/timm/PE-Core-L-14-336 (open_clip) or "
    "https://huggingface.co/facebook/PE-Core-L14-336 (Meta's PE-Core-L14-336.pt)",
}
OPEN_CLIP_FILES = "open_clip_model.safetensors | open_clip_pytorch_model.bin"
# stages whose model may be an open_clip local-dir: folder (config and weights in it)
LOCAL_DIR_STAGES = ("text", "clip")
SETTINGS = {  # stage -> (weights setting, architecture setting)
    "regions": ("checkpoint", "model"),
    "describe": ("model", "model"),
    "text": ("pretrained", "model"),
    "backbone": ("weights", "model"),
    "clip": ("pretrained", "model"),
}


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
    for stage in stages:
        if stage not in SETTINGS:
            continue
        weights_key, arch_key = SETTINGS[stage]
        section = cfg.get(stage) or {}
        arch = str(section.get(arch_key, ""))
        if stage in LOCAL_DIR_STAGES and arch.startswith("local-dir:"):  # the folder: weights
            rows.append(Need(f"{stage}.model", "open_clip folder", "open_clip_config.json + "
                             + OPEN_CLIP_FILES, "open_clip's hub layout",
                             "a model repo's files, as huggingface_hub downloads them",
                             arch))  # fmt: skip
            continue
        rows.append(_describe_need(stage, weights_key, arch, str(section.get(weights_key, ""))))
    return rows


def _describe_need(stage: str, key: str, arch: str, given: str) -> Need:
    setting = f"{stage}.{key}"
    if stage == "regions":
        if arch in SAM2_CHECKPOINTS or arch.startswith("tiny-sam2"):
            return Need(setting, f"SAM 2.1 {arch}", SAM_FILES.get(arch, "-"),
                        "checkpoint ({'model': state dict})", SAM2_WHERE, given)  # fmt: skip
        return Need(setting, f"SAM {arch}", SAM_FILES.get(arch, "-"), "PyTorch state dict",
                    SAM_WHERE, given)  # fmt: skip
    if stage == "describe":
        return Need(setting, "Qwen2.5-VL (transformers)", "a model folder",
                    "config + processor + safetensors", "https://huggingface.co/" +
                    (arch if parse_source(arch, allow_hub=True).kind == "hub"
                     else "Qwen/Qwen2.5-VL-7B-Instruct"), given, bytes_per_parameter=2)  # fmt: skip
    if stage == "backbone" and not arch.startswith("clip:"):
        official = TORCHVISION_FILES.get(arch, "model.safetensors")
        where = ("https://download.pytorch.org/models/" + official if arch in TORCHVISION_FILES
                 else "https://huggingface.co/timm/" + arch.removeprefix("timm:"))  # fmt: skip
        return Need(setting, arch, official, "state dict (.pth / .safetensors)", where, given)
    name = arch.removeprefix("clip:")
    official = OPEN_CLIP_FILES + (" | PE-Core-L14-336.pt" if name.startswith("PE-Core") else "")
    return Need(setting, f"open_clip {name}", official, "state dict",
                OPEN_CLIP_WHERE.get(name, "open_clip.list_pretrained()"), given)  # fmt: skip


def check(need: Need, cfg: dict[str, Any]) -> Need:
    """Fill ``need``'s status, parameter count and, for a good local file, its sha256."""
    stage = need.setting.split(".")[0]
    arch = str(cfg[stage][SETTINGS[stage][1]])
    if stage in LOCAL_DIR_STAGES and arch.startswith("local-dir:"):
        return _check_local_dir(need, str(cfg[stage]["pretrained"]))
    if arch == "tiny" or arch.startswith(("clip:tiny", "tiny-")):
        need.status, need.message = "built in", "no file needed: a toy model"
        return need
    source = parse_source(need.given, allow_hub=stage == "describe")
    try:
        need.parameters = _parameters(stage, arch, cfg)
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
        need.parameters = _check_path(stage, arch, source.path, cfg) or need.parameters
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


def _parameters(stage: str, arch: str, cfg: dict[str, Any]) -> int | None:
    if stage == "regions":
        return wc.sam_shapes(arch)[1]
    if stage in ("text", "clip") or arch.startswith("clip:"):
        return wc.open_clip_shapes(arch.removeprefix("clip:"))[1]
    if stage == "backbone":
        return wc.backbone_shapes(arch, int(cfg["backbone"]["input_size"]))[1]
    return None  # describe: known once a folder is given


def _check_path(stage: str, arch: str, path: Path, cfg: dict[str, Any]) -> int | None:
    """Raise DatasetError unless ``path`` holds ``arch``; the folder's parameter count for
    a vision-language model (its config says which)."""
    if stage == "describe":
        if not path.is_dir():
            raise DatasetError("describe.model takes a model folder, not a file")
        return wc.check_vlm_folder(path)
    if path.is_dir():
        raise DatasetError("a weights file is needed here, not a folder")
    if stage == "regions":
        wc.check_sam(path, arch)
    elif stage in ("text", "clip") or arch.startswith("clip:"):
        wc.check_open_clip(path, arch.removeprefix("clip:"))
    else:
        shapes, _, optional = wc.backbone_shapes(arch, int(cfg["backbone"]["input_size"]))
        wc.check_file(path, shapes, arch, optional)
    return None
