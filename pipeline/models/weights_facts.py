"""What each stage knows of its weights: the files its publisher ships, their format and
where they live, whether a model needs a file at all, and the check that a given file
is that architecture (built on the meta device, :mod:`weights_check`).

A stage declares its facts as a class attribute (``Stage.weights``); ``qfeat weights``
and the up-front checks (:mod:`qfeat.pipeline.models.weights_table`) read them from
the stage classes, so a new stage with weights adds them in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfeat.errors import DatasetError
from qfeat.pipeline.regions import SAM2_CHECKPOINTS, SAM_CHECKPOINTS


def _wc():
    """:mod:`weights_check`, imported when a check runs (it imports torch; stage modules
    import this one)."""
    from qfeat.pipeline.models import weights_check

    return weights_check


@dataclass(frozen=True)
class Row:
    """One weights setting as the table shows it."""

    architecture: str  # what the configuration asks for, e.g. "SAM vit_h"
    official: str  # the file or folder as its publisher ships it
    format: str
    where: str
    bytes_per_parameter: int = 4


class WeightsFacts:
    """The facts of one stage's weights. ``hub``: a hub id is accepted (downloaded only
    when a run uses it); ``local_dir``: an open_clip ``local-dir:`` folder is."""

    hub = False
    local_dir = False

    def row(self, arch: str) -> Row:
        raise NotImplementedError

    def builtin(self, arch: str) -> bool:
        """A toy model built from code (``tiny``): no file needed."""
        return arch == "tiny" or arch.startswith("tiny-")

    def parameters(self, arch: str, section: dict[str, Any]) -> int | None:
        """The architecture's parameter count (meta device); None when only a given
        folder says (a vision-language model)."""
        return None

    def check_path(self, arch: str, path: Path, section: dict[str, Any]) -> int | None:
        """Raise DatasetError unless ``path`` holds ``arch``; a folder's parameter count
        when only the folder knows it."""
        if path.is_dir():
            raise DatasetError("a weights file is needed here, not a folder")
        self.check_file(arch, path, section)
        return None

    def check_file(self, arch: str, path: Path, section: dict[str, Any]) -> None:
        raise NotImplementedError


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
LOCAL_DIR_ROW = Row("open_clip folder", "open_clip_config.json + " + OPEN_CLIP_FILES,
                    "open_clip's hub layout",
                    "a model repo's files, as huggingface_hub downloads them")  # fmt: skip


class SamWeights(WeightsFacts):
    """Segment Anything's (and SAM 2.1's) checkpoints, as Meta publishes them."""

    def row(self, arch: str) -> Row:
        if arch in SAM2_CHECKPOINTS or arch.startswith("tiny-sam2"):
            return Row(f"SAM 2.1 {arch}", SAM_FILES.get(arch, "-"),
                       "checkpoint ({'model': state dict})", SAM2_WHERE)  # fmt: skip
        return Row(f"SAM {arch}", SAM_FILES.get(arch, "-"), "PyTorch state dict", SAM_WHERE)

    def parameters(self, arch: str, section: dict[str, Any]) -> int | None:
        return _wc().sam_shapes(arch)[1]

    def check_file(self, arch: str, path: Path, section: dict[str, Any]) -> None:
        _wc().check_sam(path, arch)


class VisionLanguageWeights(WeightsFacts):
    """A transformers vision-language model folder (or a hub id)."""

    hub = True
    DEFAULT = "Qwen/Qwen2.5-VL-7B-Instruct"

    def row(self, arch: str) -> Row:
        from qfeat.pipeline.models.source import parse_source

        where = arch if parse_source(arch, allow_hub=True).kind == "hub" else self.DEFAULT
        return Row("Qwen2.5-VL (transformers)", "a model folder",
                   "config + processor + safetensors", "https://huggingface.co/" + where,
                   bytes_per_parameter=2)  # fmt: skip

    def builtin(self, arch: str) -> bool:
        return arch == "tiny"

    def check_path(self, arch: str, path: Path, section: dict[str, Any]) -> int | None:
        if not path.is_dir():
            raise DatasetError("describe.model takes a model folder, not a file")
        return _wc().check_vlm_folder(path)


class OpenClipWeights(WeightsFacts):
    """An open_clip model's weights file (or a ``local-dir:`` folder holding them)."""

    local_dir = True

    def row(self, arch: str) -> Row:
        official = OPEN_CLIP_FILES + (" | PE-Core-L14-336.pt" if arch.startswith("PE-Core") else "")
        return Row(f"open_clip {arch}", official, "state dict",
                   OPEN_CLIP_WHERE.get(arch, "open_clip.list_pretrained()"))  # fmt: skip

    def parameters(self, arch: str, section: dict[str, Any]) -> int | None:
        return _wc().open_clip_shapes(arch)[1]

    def check_file(self, arch: str, path: Path, section: dict[str, Any]) -> None:
        _wc().check_open_clip(path, arch)


class BackboneWeights(WeightsFacts):
    """torchvision and timm state dicts; ``clip:NAME`` backbones are open_clip's."""

    clip = OpenClipWeights()

    def row(self, arch: str) -> Row:
        if arch.startswith("clip:"):
            return self.clip.row(arch.removeprefix("clip:"))
        official = TORCHVISION_FILES.get(arch, "model.safetensors")
        where = ("https://download.pytorch.org/models/" + official if arch in TORCHVISION_FILES
                 else "https://huggingface.co/timm/" + arch.removeprefix("timm:"))  # fmt: skip
        return Row(arch, official, "state dict (.pth / .safetensors)", where)

    def builtin(self, arch: str) -> bool:
        return arch == "tiny" or arch.startswith("clip:tiny")

    def parameters(self, arch: str, section: dict[str, Any]) -> int | None:
        if arch.startswith("clip:"):
            return self.clip.parameters(arch.removeprefix("clip:"), section)
        return _wc().backbone_shapes(arch, int(section["input_size"]))[1]

    def check_file(self, arch: str, path: Path, section: dict[str, Any]) -> None:
        if arch.startswith("clip:"):
            self.clip.check_file(arch.removeprefix("clip:"), path, section)
            return
        shapes, _, optional = _wc().backbone_shapes(arch, int(section["input_size"]))
        _wc().check_file(path, shapes, arch, optional)


__all__ = [
    "BackboneWeights",
    "OpenClipWeights",
    "Row",
    "SamWeights",
    "VisionLanguageWeights",
    "WeightsFacts",
]
