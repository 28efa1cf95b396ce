"""Whether a weights file is the model a setting needs, before any work (``qfeat weights``).

Every expected architecture is built on PyTorch's ``meta`` device: names and shapes with
no memory and no initialisation, so SAM ViT-H or a 7B vision-language model costs about a
second. Files are opened the way the stages open them (``weights_only=True`` memory-mapped
pickles, safetensors headers), so only their shapes are read. The answer for a wrong
file is one line naming the first key whose shape differs, or the missing keys.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qfeat.errors import DatasetError, without_unsafe_advice

Shapes = dict[str, tuple[int, ...]]
# buffers some library versions keep and others rebuild; never a reason to refuse a file
IGNORED = ("attn_mask", "num_batches_tracked", "position_ids")


def meta_shapes(build: Callable[[], nn.Module]) -> tuple[Shapes, int]:
    """``(name -> shape, parameter count)`` of ``build()`` built on the meta device."""
    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        module = build()
    state = module.state_dict()
    return {k: tuple(v.shape) for k, v in state.items()}, sum(
        p.numel() for p in module.parameters()
    )


def file_state(path: Path) -> dict[str, Any]:
    """The tensors of a weights file, memory-mapped or as safetensors slices (shapes only
    are read); the state dict inside training checkpoints is unwrapped."""
    from qfeat.pipeline.models.pe_meta import unwrap

    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return {k: _Slice(tuple(f.get_slice(k).get_shape())) for k in f.keys()}  # noqa: SIM118 (not iterable)
    # memory-mapped; the legacy (non-zip) format is read whole
    from qfeat.pipeline.models.clip_build import peek_checkpoint

    return unwrap(peek_checkpoint(str(path)))


class _Slice:
    """A safetensors entry's shape, standing in for the tensor."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = shape


def shapes_of(state: dict[str, Any]) -> Shapes:
    return {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def difference(found: Shapes, expected: Shapes, what: str, optional=()) -> str | None:
    """One line on how ``found`` (a file) differs from ``expected`` (``what``), or None."""
    for key, shape in expected.items():
        if key in found and found[key] != shape:
            return f"{key} is {list(found[key])} in the file but {list(shape)} in {what}"
    ignored = IGNORED + tuple(optional)
    missing = [k for k in expected if k not in found and not k.endswith(ignored)]
    extra = [k for k in found if k not in expected and not k.endswith(ignored)]
    if missing:
        return f"{len(missing)} weights of {what} are not in the file, e.g. {missing[0]}"
    if extra:
        return f"the file has {len(extra)} weights {what} does not have, e.g. {extra[0]}"
    return None


# --- the expected architectures (each built once per process) -----------------------
@functools.cache
def sam_shapes(model: str) -> tuple[Shapes, int]:
    """SAM's (segment-anything) or SAM 2.1's (the sam2 package's config) shapes."""
    from qfeat.pipeline.regions import SAM2_CHECKPOINTS

    if model in SAM2_CHECKPOINTS:
        from qfeat.pipeline.models.sam2_build import sam2_shapes

        return sam2_shapes(model)
    from segment_anything import sam_model_registry

    return meta_shapes(lambda: sam_model_registry[model](checkpoint=None))


def _open_clip_meta(name: str) -> tuple[Shapes, int, nn.Module]:
    """open_clip model ``name`` (a config name or ``local-dir:FOLDER``, whose config is
    read and whose weights are not) built on the meta device."""
    import logging

    import open_clip

    from qfeat.pipeline.models.clip_build import RandomInitNotice

    root = logging.getLogger()
    quiet = RandomInitNotice()
    root.addFilter(quiet)
    try:
        with torch.device("meta"), torch.random.fork_rng(devices=[]):
            model = open_clip.create_model(name, load_weights=False, device="meta")
    finally:
        root.removeFilter(quiet)
    state = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return state, sum(p.numel() for p in model.parameters()), model


@functools.cache
def open_clip_shapes(name: str) -> tuple[Shapes, int, nn.Module]:
    return _open_clip_meta(name)


@functools.cache
def backbone_shapes(name: str, input_size: int) -> tuple[Shapes, int, tuple[str, ...]]:
    """``(shapes, parameters, keys a file may lack)`` of a backbone name."""
    if name in ("resnet18", "resnet50"):
        import torchvision

        return (*meta_shapes(getattr(torchvision.models, name)), ())
    if name.startswith("timm:"):
        import timm

        def build():
            try:
                return timm.create_model(name[5:], pretrained=False, img_size=input_size)
            except TypeError:  # CNNs take no img_size
                return timm.create_model(name[5:], pretrained=False)

        return (*meta_shapes(build), ("head.weight", "head.bias", "fc.weight", "fc.bias"))
    raise ValueError(name)


# --- the checks ---------------------------------------------------------------------
def read_state(path: Path) -> dict[str, Any]:
    """:func:`file_state`, or a DatasetError for a file that is no weights file."""
    if path.is_file() and path.stat().st_size == 0:
        raise DatasetError("is empty (0 bytes): an interrupted download? get it again")
    try:
        return file_state(path)
    except Exception as exc:  # noqa: BLE001 - unreadable, unsafe or not weights at all
        raise DatasetError(
            f"cannot be read as weights ({without_unsafe_advice(unreadable_reason(exc))})"
        ) from None


def unreadable_reason(exc: BaseException) -> str:
    """The line of a loader's error that says why (PyTorch's weights-only message opens
    with three sentences about its own defaults before ``Unsupported operand 165``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        after = [x for x in lines[1:] if "WeightsUnpickler" not in x and "documentation" not in x]
        reason = after[0] if after else "not plain tensors"
        return f"not a PyTorch weights file: {reason}"[:160]
    return (lines[0] if lines else type(exc).__name__)[:160]


def check_file(path: Path, expected: Shapes, what: str, optional=(), convert=None) -> None:
    """Raise DatasetError unless the weights file ``path`` holds ``expected``'s shapes."""
    state = read_state(path)
    if convert is not None:
        state = convert(state)
    problem = difference(shapes_of(state), expected, what, optional)
    if problem:
        raise DatasetError(problem)


def check_sam(path: Path, model: str) -> int:
    expected, params = sam_shapes(model)
    found = shapes_of(read_state(path))
    problem = difference(found, expected, f"SAM {model}")
    if problem:
        from qfeat.pipeline.regions import SAM2_CHECKPOINTS, SAM_CHECKPOINTS

        family = SAM2_CHECKPOINTS if model in SAM2_CHECKPOINTS else SAM_CHECKPOINTS
        other = [m for m in family
                 if m != model and difference(found, sam_shapes(m)[0], m) is None]  # fmt: skip
        if other:
            problem += f" (it is a SAM {other[0]} checkpoint: set regions.model={other[0]})"
        raise DatasetError(problem)
    return params


def check_open_clip(path: Path, name: str) -> int:
    from qfeat.pipeline.models.pe_meta import is_meta_pe, to_open_clip

    expected, params, model = open_clip_shapes(name)

    def convert(state):
        # Meta's PE file is a pickle; only a timm PE trunk reads it
        if path.suffix == ".safetensors" or not hasattr(model.visual, "trunk"):
            return state
        if not is_meta_pe(state):
            return state
        try:  # Meta's layout, or open_clip's classic CLIP (the same top-level names)
            return to_open_clip(state, model)
        except Exception:  # noqa: BLE001 - not PE: the names and shapes will say how
            return state

    # open_clip fills a missing bias of PE's patch embedding (Meta's conv1 has none)
    check_file(path, expected, f"open_clip {name}", ("patch_embed.proj.bias",), convert)
    return params


def check_open_clip_folder(model: str, setting: str, pretrained: str) -> tuple[int, Path]:
    """``(parameters, weights file)`` of ``local-dir:`` model ``model`` whose weights hold
    the shapes its ``open_clip_config.json`` builds; a DatasetError naming what is not so
    (the stages' own checks first: config and weights file there, plain tensors, and
    an OptionError for a ``pretrained`` file given as well)."""
    from qfeat.pipeline.models.clip_build import register_tiny_timm
    from qfeat.pipeline.models.source import require_open_clip_folder

    weights = require_open_clip_folder(model, setting, pretrained)
    folder = weights.parent
    register_tiny_timm()  # a folder saved from a tiny-pe model names qfeat's timm trunk
    try:
        expected, params, _ = _open_clip_meta(f"local-dir:{folder}")
    except Exception as exc:  # noqa: BLE001 - a config open_clip cannot build
        raise DatasetError(
            f"open_clip cannot build the model its open_clip_config.json describes "
            f"({str(exc).splitlines()[0][:160]})"
        ) from None
    check_file(weights, expected, "the model open_clip_config.json describes",
               ("patch_embed.proj.bias",))  # fmt: skip
    return params, weights


def check_vlm_folder(folder: Path) -> int:
    """A transformers vision-language folder (Qwen2.5-VL in the paper preset): config
    with a vision tower, processor files, and weights whose shapes match the config."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise DatasetError("no config.json: not a transformers model folder")
    config = json.loads(config_path.read_text())
    kind = config.get("model_type", "?")
    if "vision_config" not in config:
        arch = ", ".join(config.get("architectures") or [])
        raise DatasetError(
            f"config.json says model_type '{kind}' ({arch or 'no architectures'}) with no "
            "vision tower: a text-only model. The describe stage needs a vision-language "
            "folder such as Qwen2.5-VL-7B-Instruct"
        )
    missing = [name for name, ok in _processor_files(folder) if not ok]
    if missing:
        raise DatasetError(f"the processor is incomplete: {', '.join(missing)} missing")
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise DatasetError("no *.safetensors weights in the folder")
    found: Shapes = {}
    for file in files:
        found.update(shapes_of(file_state(file)))
    from transformers import AutoConfig, AutoModelForImageTextToText

    cfg = AutoConfig.from_pretrained(folder, local_files_only=True)
    shapes, params = meta_shapes(lambda: AutoModelForImageTextToText.from_config(cfg))
    expected = {_plain(k): v for k, v in shapes.items()}
    found = {_plain(k): v for k, v in found.items()}
    tied = ("lm_head.weight",) if getattr(cfg, "tie_word_embeddings", False) else ()
    problem = difference(found, expected, f"the {kind} model config.json describes", tied)
    if problem:
        raise DatasetError(problem)
    return params


def _plain(key: str) -> str:
    """A weight's name without the wrappers that differ between transformers' modules and
    the published files (``model.language_model.layers`` vs ``model.layers``,
    ``model.visual`` vs ``visual``)."""
    while key.startswith(("model.", "language_model.")):
        key = key.partition(".")[2]
    return key


def _processor_files(folder: Path) -> list[tuple[str, bool]]:
    tokenizer_config = folder / "tokenizer_config.json"
    in_config = tokenizer_config.is_file() and "chat_template" in json.loads(
        tokenizer_config.read_text()
    )
    template = in_config or any(
        (folder / n).is_file() for n in ("chat_template.json", "chat_template.jinja")
    )
    tokenizer = (folder / "tokenizer.json").is_file() or (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    )
    processor = folder / "processor_config.json"  # transformers 5 nests it there
    image = (folder / "preprocessor_config.json").is_file() or (
        processor.is_file() and "image_processor" in json.loads(processor.read_text())
    )
    return [
        ("preprocessor_config.json", image),
        ("tokenizer.json (or vocab.json + merges.txt)", tokenizer),
        ("a chat template", template),
    ]
