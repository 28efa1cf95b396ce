"""Building open_clip models from local files only, and the toy-size ``tiny`` configs.

:func:`build_clip` takes an open_clip config name with a local checkpoint file (or seeded
random weights), a ``local-dir:`` folder in open_clip's hub layout, or a tiny preset:
``tiny-vit`` (a classic open_clip ViT) and ``tiny-pe`` (a PE-Core-style timm Eva trunk
with rotary embedding), both the real library classes at toy size. Tags are never
resolved and nothing is downloaded. :mod:`qfeat.pipeline.models.clip_split` runs the towers
built here split at block ``L - K``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qfeat.pipeline.models.clip_split import num_blocks, num_tokens, visual_tower
from qfeat.pipeline.models.no_init import skip_random_init

__all__ = [
    "OPEN_CLIP_NAMES",
    "TINY_ALIASES",
    "TINY_CONFIGS",
    "PreprocessInfo",
    "RandomInitNotice",
    "build_clip",
    "peek_checkpoint",
    "random_identity",
    "register_tiny_timm",
    "tiny_architecture",
    "tiny_name",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- tiny configs

#: timm entrypoint registered for ``tiny-pe``: the real ``vit_pe_core_tiny_patch16_384``
#: entrypoint (rope ``cat``, xy grid, offset 1, pre-norm, ``map`` pooling) at toy size.
TINY_PE_TIMM_NAME = "qfeat_tiny_pe_core_patch4_32"

_TINY_PE_TRUNK_KWARGS: dict[str, Any] = {
    "img_size": 32,
    # Patch 4: a patch's 48 pixel values fit in the 64-wide token, so the (random) patch
    # embedding loses nothing. With patch 8, 192 values squeezed into 64 dimensions made
    # colour noise and achromatic texture look alike, and SCMA on demo-video learned blur
    # but ranked noisy clips above clean ones (mean test SRCC 0.38 against 0.63).
    "patch_size": 4,
    "embed_dim": 64,
    # Two blocks, both adapted by the tiny preset (adapted_blocks = 2), and no LayerNorm
    # before them: the cached hidden states are then the linear patch embedding itself,
    # which keeps each patch's energy. With PE's pre-transformer LayerNorm and two random
    # blocks in front of the adapters, noise and blur were normalised away and SCMA could
    # not learn quality on demo-video (mean test SRCC 0.04 against 0.40 with this trunk).
    # Real PE configs keep their pre-norm; the split code handles both.
    "depth": 2,
    "use_pre_transformer_norm": False,
    "num_heads": 2,
    "ref_feat_shape": (8, 8),  # = the patch grid, as the real PE configs (24x24 for 384/16)
    "attn_pool_num_heads": 2,
    # Eva scales its random head (= the CLIP projection) by 1e-3; real PE weights replace it,
    # seeded toy weights keep the usual init so embeddings are not ~1e-5.
    "head_init_scale": 1.0,
}

#: open_clip model configs of the tiny presets (the JSON that is registered with open_clip).
#: ``tiny-vit`` mirrors ``ViT-B-16.json``; ``tiny-pe`` mirrors ``PE-Core-T-16-384.json``.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny-vit": {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 32,
            "layers": 4,
            "width": 64,
            "head_width": 32,
            "patch_size": 8,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
    },
    "tiny-pe": {
        "embed_dim": 32,
        "vision_cfg": {
            "image_size": 32,
            "timm_model_name": TINY_PE_TIMM_NAME,
            "timm_model_pretrained": False,
            "timm_pool": "map",
            "timm_proj": None,
        },
        "text_cfg": {
            "context_length": 32,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 2,
        },
        "custom_text": True,
    },
}

#: Other names accepted for the tiny presets (the ``tiny`` run preset says ``model = "tiny"``).
TINY_ALIASES = {"tiny": "tiny-pe"}

#: Names the tiny configs are registered under in open_clip's model registry.
OPEN_CLIP_NAMES = {"tiny-vit": "qfeat-tiny-vit", "tiny-pe": "qfeat-tiny-pe"}

_PE_PREPROCESS = {
    "mean": (0.5,) * 3,
    "std": (0.5,) * 3,
    "interpolation": "bilinear",
    "resize_mode": "squash",
}
_TINY_PREPROCESS = {"tiny-vit": {}, "tiny-pe": _PE_PREPROCESS}
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


@dataclass(frozen=True)
class PreprocessInfo:
    """What the vision tower expects as input.

    ``pixels = (rgb_float_in_0_1 - mean) / std`` per channel, image resized to ``size``
    (``(H, W)``) with ``interpolation`` / ``resize_mode`` as open_clip names them
    (``shortest`` = resize short side + centre crop, ``squash`` = resize both sides).
    """

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"


def tiny_name(name: str) -> str | None:
    """The tiny preset ``name`` refers to (``"tiny"`` -> ``"tiny-pe"``), else ``None``."""
    name = TINY_ALIASES.get(name, name)
    return name if name in TINY_CONFIGS else None


def tiny_architecture(name: str) -> str:
    """Short hash of a tiny preset's full config (open_clip JSON plus the timm trunk
    arguments), so caches made with an older toy architecture are not reused."""
    from qfeat.cache.fingerprint import canonical_json, sha256_text

    tiny = tiny_name(name)
    if tiny is None:
        raise ValueError(f"{name!r} is not a tiny preset")
    spec = {"open_clip": TINY_CONFIGS[tiny]}
    if tiny == "tiny-pe":
        spec["trunk"] = _TINY_PE_TRUNK_KWARGS
    return sha256_text(canonical_json(spec))[:12]


def random_identity(name: str, seed: int) -> dict[str, Any]:
    """Model identity of a seeded random model ``name`` (for a manifest): name, seed and,
    for the tiny presets, :func:`tiny_architecture`, shared by every stage built on them."""
    from qfeat.cache.fingerprint import model_identity

    arch = {"arch": tiny_architecture(name)} if tiny_name(name) else {}
    return model_identity(name, seed=seed, init="random", **arch)


def qfeat_tiny_pe_core_patch4_32(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm entrypoint of the ``tiny-pe`` trunk: timm's own ``vit_pe_core_tiny_patch16_384``
    with :data:`_TINY_PE_TRUNK_KWARGS` (registered lazily by :func:`register_tiny_timm`)."""
    from timm.models.eva import vit_pe_core_tiny_patch16_384

    if pretrained:
        raise ValueError(f"{TINY_PE_TIMM_NAME} has no pretrained weights")
    return vit_pe_core_tiny_patch16_384(pretrained=False, **{**_TINY_PE_TRUNK_KWARGS, **kwargs})


def register_tiny_timm() -> None:
    """Register :data:`TINY_PE_TIMM_NAME` with timm once (open_clip 3.3 has no way to pass
    extra kwargs to ``timm.create_model``, so a toy-size PE needs its own entrypoint)."""
    import timm
    from timm.models import register_model

    if not timm.is_model(TINY_PE_TIMM_NAME):
        register_model(qfeat_tiny_pe_core_patch4_32)


def _register_tiny_configs() -> None:
    """Add the tiny JSON configs to open_clip's registry once per process."""
    import open_clip

    register_tiny_timm()
    if all(n in open_clip.list_models() for n in OPEN_CLIP_NAMES.values()):
        return
    with tempfile.TemporaryDirectory(prefix="qfeat-clip-configs-") as folder:
        for preset, cfg in TINY_CONFIGS.items():
            path = Path(folder) / f"{OPEN_CLIP_NAMES[preset]}.json"
            path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        # the registry keeps the parsed configs after the folder is gone
        open_clip.add_model_config(folder)


# --------------------------------------------------------------------------- building


def _tag_preprocess(name: str) -> dict[str, Any]:
    """Preprocessing shared by every pretrained tag of ``name`` in open_clip (empty if the
    tags disagree or there are none). A local weights file gets no tag config from open_clip,
    which would otherwise silently fall back to OpenAI mean/std (wrong for PE: 0.5/0.5)."""
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    seen = set()
    for tag in list_pretrained_tags_by_model(name):
        cfg = get_pretrained_cfg(name, tag)
        seen.add(
            tuple(
                (k, tuple(v) if isinstance(v, list) else v)
                for k, v in cfg.items()
                if k in _PREPROCESS_KEYS
            )
        )
    if len(seen) != 1:
        if seen:
            log.warning("open_clip tags of %s disagree on preprocessing; using its defaults", name)
        return {}
    return dict(seen.pop())


def _warn_quick_gelu(name: str) -> None:
    """Warn when some tags of ``name`` were trained with QuickGELU (e.g. ViT-B-16 ``openai``):
    their weights need the ``<name>-quickgelu`` config, which a file path cannot tell."""
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model

    tags = [
        t
        for t in list_pretrained_tags_by_model(name)
        if get_pretrained_cfg(name, t).get("quick_gelu")
    ]
    if tags and not name.endswith("quickgelu"):
        log.warning(
            "%s weights from tags %s need QuickGELU; use model '%s-quickgelu' for those files",
            name,
            ", ".join(tags),
            name,
        )


def _preprocess_info(model: nn.Module) -> PreprocessInfo:
    """:class:`PreprocessInfo` from ``model.visual.preprocess_cfg`` (set by create_model)."""
    from open_clip import get_model_preprocess_cfg
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg = get_model_preprocess_cfg(model)
    size = cfg.get("size", visual_tower(model).image_size)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return PreprocessInfo(
        size=(int(size[0]), int(size[1])),
        mean=tuple(float(v) for v in cfg.get("mean", OPENAI_DATASET_MEAN)),
        std=tuple(float(v) for v in cfg.get("std", OPENAI_DATASET_STD)),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        resize_mode=str(cfg.get("resize_mode", "shortest")),
    )


def _seeded_create(oc_name: str, pretrained: str | None, seed: int, pre: dict) -> nn.Module:
    """``open_clip.create_model`` with random init under ``torch.manual_seed(seed)``; the
    global RNG state is restored afterwards."""
    import logging

    import open_clip

    from qfeat.pipeline.models.pe_meta import is_meta_pe, load_meta_pe, unwrap

    meta = pretrained is not None and is_meta_pe(unwrap(peek_checkpoint(pretrained)))
    root = logging.getLogger()
    quiet = RandomInitNotice()
    if not pretrained or meta:  # random init asked for, or weights loaded below
        root.addFilter(quiet)
    # a file loaded strictly (open_clip's load_checkpoint, load_meta_pe) replaces every
    # parameter: its random init is skipped (no_init.py)
    # (build_clip has checked that it is a file; .npz/.npy go through big_vision's loader)
    loaded = bool(pretrained) and Path(pretrained).suffix not in (".npz", ".npy")
    try:
        with torch.random.fork_rng(devices=[]), skip_random_init() if loaded else nullcontext():
            torch.manual_seed(seed)
            model = open_clip.create_model(
                oc_name, pretrained=None if meta else pretrained, force_preprocess_cfg=pre or None
            )
    finally:
        root.removeFilter(quiet)
    if not meta:
        return model
    # Meta's own PE file (perception_models, what the Q-CLIP release loads) for a timm
    # PE trunk: converted. The same top-level layout is open_clip's classic CLIP's, which
    # open_clip reads itself.
    if hasattr(model.visual, "trunk"):
        return load_meta_pe(model, pretrained)
    open_clip.load_checkpoint(model, pretrained)
    return model


def peek_checkpoint(path: str) -> Any:
    """A checkpoint memory-mapped (no read of the tensors), to look at its keys."""
    if Path(path).suffix.lower() == ".safetensors":
        return {}
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # the legacy (non-zip) format cannot be mapped
        return torch.load(path, map_location="cpu", weights_only=True)


class RandomInitNotice:
    """Drops open_clip's "No pretrained weights loaded ... initialized randomly" record."""

    def filter(self, record) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


def _resolve(name: str, pretrained: str, seed: int, tiny: bool) -> tuple[str, dict[str, Any]]:
    """``(open_clip model name, preprocess overrides)`` for :func:`build_clip`'s arguments."""
    import open_clip

    preset = tiny_name(name)
    if tiny and preset is None:
        raise ValueError(f"unknown tiny clip preset '{name}' (known: {', '.join(TINY_CONFIGS)})")
    if preset is not None:
        _register_tiny_configs()
        return OPEN_CLIP_NAMES[preset], _TINY_PREPROCESS[preset]
    if name.startswith("hf-hub:"):
        raise ValueError(f"'{name}': hub models are not downloaded; use local-dir:/path/to/folder")
    if name.startswith("local-dir:"):
        if pretrained:
            raise ValueError("local-dir: models take their weights from the folder, not pretrained")
        if not Path(name.removeprefix("local-dir:")).is_dir():
            raise FileNotFoundError(
                f"clip model folder {name.removeprefix('local-dir:')} not found"
            )
        register_tiny_timm()  # a folder saved from a tiny-pe variant names its timm trunk
        return name, {}  # config, preprocess and weights come from the folder
    if name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model '{name}' (see open_clip.list_models())")
    if pretrained:
        _warn_quick_gelu(name)
    else:
        log.warning("clip model %s: no weights file given, random init (seed %d)", name, seed)
    return name, _tag_preprocess(name)


def build_clip(
    name: str, pretrained: str = "", seed: int = 0, tiny: bool = False
) -> tuple[nn.Module, PreprocessInfo]:
    """Build an open_clip model in eval mode (fp32, CPU) and what its input must look like.

    Args:
        name: an open_clip config name (``"ViT-B-16"``, ``"PE-Core-L-14-336"``, ...), a
            ``"local-dir:/folder"`` holding ``open_clip_config.json`` and weights (the layout
            of open_clip's hub repos), or a tiny preset (``"tiny-vit"``, ``"tiny-pe"``; alias
            ``"tiny"`` = ``"tiny-pe"``).
        pretrained: path of a local open_clip checkpoint file; ``""`` = seeded random
            weights (logged as a warning for real configs). Tags such as ``"openai"`` and
            ``hf-hub:`` names are refused so nothing is ever downloaded.
        seed: seed for the random initialisation (``torch.manual_seed``; the caller's RNG
            state is left as it was).
        tiny: require ``name`` to be a tiny preset (tiny preset names are recognised
            without it too).

    Returns:
        ``(model, preprocess)``: a ``CLIP`` / ``CustomTextCLIP`` (both towers usable) and
        its :class:`PreprocessInfo`. For a config name with a weights file, mean/std/
        interpolation/resize mode are those all of open_clip's pretrained tags of that
        name share (PE: 0.5/0.5, bilinear, squash), else open_clip's defaults.

    Raises:
        ValueError: unknown name, ``hf-hub:`` name, or ``tiny=True`` with a non-tiny name.
        FileNotFoundError: ``pretrained`` (or the ``local-dir:`` folder) does not exist.
    """
    if pretrained and not Path(pretrained).is_file():
        raise FileNotFoundError(
            f"clip weights {pretrained!r} not found; give a local open_clip checkpoint file "
            "(hub tags are not downloaded)"
        )
    oc_name, pre = _resolve(name, pretrained, seed, tiny)
    model = _seeded_create(oc_name, pretrained or None, seed, pre).eval()
    info = _preprocess_info(model)
    log.info(
        "built clip %s (blocks=%d, tokens=%d, input=%s)",
        name,
        num_blocks(model),
        num_tokens(model),
        info.size,
    )
    return model, info
