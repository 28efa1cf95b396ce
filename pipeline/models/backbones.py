"""Frozen image backbones that return a feature map ``[C, h, w]``.

``tiny``: torchvision's ResNet class with one BasicBlock per stage and seeded random
weights. ``resnet50`` / ``resnet18``: torchvision architectures, weights from a local
file (``backbone.weights``) loaded with ``weights_only=True``; never downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pipeline.datasets.base import DatasetError

BUILDERS = ("tiny", "resnet18", "resnet50")


def _trunk(model: nn.Module) -> nn.Module:
    """The ResNet up to layer4 (no pooling, no classifier)."""
    return nn.Sequential(*list(model.children())[:-2])


def build_backbone(name: str, weights: str = "", seed: int = 0) -> tuple[nn.Module, int]:
    """``(trunk, channels)`` in eval mode."""
    from torchvision.models import resnet
    from torchvision.models.resnet import BasicBlock

    if name == "tiny":
        torch.manual_seed(seed)
        model = resnet.ResNet(BasicBlock, [1, 1, 1, 1])
        channels = 512
    elif name in ("resnet18", "resnet50"):
        model = getattr(resnet, name)(weights=None)
        channels = 512 if name == "resnet18" else 2048
        if not weights:
            raise DatasetError(
                f"backbone {name} needs local weights: --set backbone.weights=/path/{name}.pth"
            )
        state = torch.load(Path(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    else:
        raise DatasetError(f"unknown backbone '{name}' (known: {', '.join(BUILDERS)})")
    return _trunk(model).eval(), channels
