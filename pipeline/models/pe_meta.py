"""Meta's own PE checkpoints (``PE-Core-L14-336.pt`` from perception_models, the file the
Q-CLIP release loads) in open_clip's PE model, converted on load.

Meta's CLIP keeps the text tower at the top level (``token_embedding``,
``positional_embedding``, ``transformer.resblocks.*``, ``ln_final``, ``text_projection``)
and the vision tower under ``visual.`` in its own names (``conv1``, ``class_embedding``,
``ln_pre``/``ln_post``, ``attn_pool.*``, ``proj``). open_clip builds PE as a timm Eva trunk
(``visual.trunk.*``) plus its text transformer under ``text.``. The vision keys go
through timm's own PE filter (``timm.models.eva.checkpoint_filter_fn``, which recognises
Meta's layout); the text keys only move under ``text.``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

TEXT = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


def unwrap(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint (``state_dict`` / ``model`` / ``weights`` dicts,
    ``module.`` prefixes of DataParallel removed)."""
    state = checkpoint
    for key in ("state_dict", "model", "weights"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError("the checkpoint holds no state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def is_meta_pe(state: dict[str, Any]) -> bool:
    """Whether ``state`` is in Meta's PE layout (not open_clip's)."""
    return "visual.conv1.weight" in state and not any(k.startswith("visual.trunk.") for k in state)


def to_open_clip(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` (Meta's PE CLIP) in the key names and shapes of open_clip's ``model``."""
    from timm.models.eva import checkpoint_filter_fn

    trunk = model.visual.trunk
    out = {f"visual.trunk.{k}": v for k, v in checkpoint_filter_fn(state, trunk).items()}
    for key, value in state.items():
        if key.startswith(TEXT):
            if key == "text_projection.weight":  # an nn.Linear in some configs
                key, value = "text_projection", value.t()
            out[f"text.{key}"] = value
    if "logit_scale" in state:
        out["logit_scale"] = state["logit_scale"]
    if "logit_bias" in state:
        out["logit_bias"] = state["logit_bias"]
    return out


def load_meta_pe(model: nn.Module, path: Path | str) -> nn.Module:
    """Load Meta's PE checkpoint at ``path`` into open_clip's PE ``model`` (in place).

    Raises ValueError naming the first keys or shapes that differ, e.g. a checkpoint of
    another PE size.
    """
    state = unwrap(torch.load(path, map_location="cpu", weights_only=True, mmap=True))
    converted = to_open_clip(state, model)
    own = model.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} (model: {tuple(own[k].shape)})"
        for k, v in converted.items()
        if k in own and own[k].shape != v.shape
    ]
    if wrong:
        raise ValueError(f"{path}: shapes differ from the model: {', '.join(wrong[:3])}")
    for key in ("visual.trunk.patch_embed.proj.bias",):  # Meta's conv1 has no bias
        if key in own and key not in converted:
            converted[key] = torch.zeros_like(own[key])
    missing, unexpected = model.load_state_dict(converted, strict=False)
    missing = [k for k in missing if not k.endswith("attn_mask")]
    if missing or unexpected:
        raise ValueError(
            f"{path}: not this PE model's weights (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    return model
