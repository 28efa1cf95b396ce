"""Frozen image backbones that return a feature map ``[C, h, w]``: a small registry.

Names (``backbone.model``):

- ``tiny``: torchvision's ResNet class with one BasicBlock per stage, seeded random,
  cut after layer1 (64 channels, stride 4): with random weights the deeper stages keep
  little of the texture statistics quality depends on (ridge probes on the demo set's
  mean+std features: SRCC ~0.59 from layer1, ~0.47 from layer2, ~0.33 from layer4).
- ``resnet18`` / ``resnet50``: torchvision architectures, layer4 output.
- ``clip:<open_clip name>`` (e.g. ``clip:ViT-B-16``, ``clip:tiny-vit``): the vision
  tower's final patch tokens (after the last block and its norm, prefix tokens dropped)
  laid out on the patch grid. Images go in at the model's own input size.
- ``timm:<timm name>`` (e.g. ``timm:convnext_tiny``, ``timm:vit_small_patch16_224``):
  ``forward_features``; token outputs are laid out on the patch grid.

Weights (``backbone.weights``) come from a local file only, loaded with
``weights_only=True`` or safetensors; ``random`` asks for seeded random weights
(benchmarks, tests). Nothing is ever downloaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from qfeat.errors import DatasetError
from qfeat.pipeline.models.architecture import architecture_hash
from qfeat.pipeline.models.source import parse_source

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FIXED = ("tiny", "resnet18", "resnet50")
TINY_LAYERS = [1, 1, 1, 1]  # BasicBlocks per stage of the toy ResNet (cut after layer1)
PREFIXES = ("clip:", "timm:")
BUILDERS = (*FIXED, "clip:<open_clip name>", "timm:<timm name>")


@dataclass
class Backbone:
    """A frozen extractor: ``module(pixels [B, 3, S, S]) -> [B, C, h, w]``."""

    module: nn.Module
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: int = 0
    grid: tuple[int, int] = (0, 0)


def needs_weights(name: str, weights: str) -> bool:
    """Whether ``name`` needs a weights file that ``weights`` does not give."""
    if name == "tiny" or name.startswith("clip:tiny"):
        return False
    return parse_source(weights).kind not in ("random", "file")


def _load_state(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


class _ResNetTrunk(nn.Sequential):
    """A torchvision ResNet up to ``layer`` (no pooling, no classifier)."""

    def __init__(self, model: nn.Module, layer: str = "layer4"):
        names = [name for name, _ in model.named_children()]
        children = list(model.children())[: names.index(layer) + 1]
        super().__init__(*children)


def _torchvision(name: str, weights: str, seed: int, size: int) -> Backbone:
    from torchvision.models import resnet
    from torchvision.models.resnet import BasicBlock

    if name == "tiny":
        model = resnet.ResNet(BasicBlock, TINY_LAYERS)
    else:
        model = getattr(resnet, name)(weights=None)
        if weights != "random":
            model.load_state_dict(_load_state(weights))
    trunk = _ResNetTrunk(model, "layer1" if name == "tiny" else "layer4")
    return Backbone(trunk, size, IMAGENET_MEAN, IMAGENET_STD)


@functools.cache
def tiny_architecture() -> str:
    """:func:`~qfeat.pipeline.models.architecture.architecture_hash` of the toy ResNet trunk."""
    return architecture_hash(lambda: _torchvision("tiny", "", 0, 32).module)


class _TokenGrid(nn.Module):
    """``[B, N, C]`` tokens (``prefix`` leading class/register tokens) -> ``[B, C, h, w]``."""

    def __init__(self, forward_tokens: Callable, prefix: int, modules: nn.Module):
        super().__init__()
        self.inner = modules
        self.forward_tokens = forward_tokens
        self.prefix = prefix

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.forward_tokens(pixels)
        if x.ndim == 4:  # already a map (CNNs)
            return x
        x = x[:, self.prefix :]
        side = int(round(x.shape[1] ** 0.5))
        if side * side != x.shape[1]:
            raise ValueError(f"{x.shape[1]} patch tokens do not form a square grid")
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], side, side)


def _open_clip(name: str, weights: str, seed: int, size: int) -> Backbone:
    from qfeat.pipeline.models.clip_build import build_clip
    from qfeat.pipeline.models.clip_split import oc_run_blocks, tower_kind, vision_blocks

    model, pre = build_clip(name, "" if weights in ("", "random") else weights, seed=seed)
    visual = model.visual
    if tower_kind(visual) == "openclip":

        def tokens(pixels: torch.Tensor) -> torch.Tensor:
            x = oc_run_blocks(visual, visual._embeds(pixels), 0, len(vision_blocks(visual)))
            return visual.ln_post(x)

        prefix = 0 if getattr(visual, "no_cls", False) else 1
    else:  # timm trunk (PE-style)
        tokens, prefix = visual.trunk.forward_features, visual.trunk.num_prefix_tokens
    return Backbone(_TokenGrid(tokens, prefix, visual), pre.size[0], pre.mean, pre.std)


def _timm(name: str, weights: str, seed: int, size: int) -> Backbone:
    import timm

    kwargs = {"pretrained": False, "num_classes": 0}
    try:
        model = timm.create_model(name, img_size=size, **kwargs)
    except TypeError:  # CNNs take no img_size
        model = timm.create_model(name, **kwargs)
    if weights != "random":
        missing = model.load_state_dict(_load_state(weights), strict=False)
        wrong = [k for k in missing.missing_keys if not k.startswith(("head", "fc."))]
        if wrong:
            raise DatasetError(f"timm:{name} weights {weights} lack {wrong[:3]} ...")
    cfg = model.pretrained_cfg or {}
    prefix = int(getattr(model, "num_prefix_tokens", 0))
    return Backbone(
        _TokenGrid(model.forward_features, prefix, model),
        size,
        tuple(cfg.get("mean", IMAGENET_MEAN)),
        tuple(cfg.get("std", IMAGENET_STD)),
    )


def build_backbone(name: str, weights: str = "", seed: int = 0, input_size: int = 224) -> Backbone:
    """The frozen extractor ``name`` in eval mode, with its channels and grid filled in.

    Raises DatasetError for an unknown name or missing weights (see ``needs_weights``).
    """
    if needs_weights(name, weights):
        raise DatasetError(
            f"backbone {name} weights not found at '{weights}'; pass "
            "--set backbone.weights=/path/to/weights (or =random for seeded random weights)"
        )
    if name in FIXED:
        builder, arch = _torchvision, name
    elif name.startswith("clip:"):
        builder, arch = _open_clip, name.removeprefix("clip:")
    elif name.startswith("timm:"):
        builder, arch = _timm, name.removeprefix("timm:")
    else:
        raise DatasetError(f"unknown backbone '{name}' (known: {', '.join(BUILDERS)})")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = builder(arch, weights, seed, int(input_size))
    backbone.module.eval().requires_grad_(False)
    with torch.no_grad():
        probe = backbone.module(torch.zeros(1, 3, backbone.input_size, backbone.input_size))
    backbone.channels, backbone.grid = int(probe.shape[1]), (probe.shape[2], probe.shape[3])
    return backbone
