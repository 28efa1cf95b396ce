"""Where a model's weights come from, decided in one place for every stage and trainer.

A weights setting (``regions.checkpoint``, ``text.pretrained``, ``clip.pretrained``,
``backbone.weights``, ``describe.model``) holds one of:

==========  ==================================================================
``random``  seeded random weights (benchmarks, tests); nothing is read
``""``      nothing given (fine for the ``tiny`` models, an error otherwise)
a path      a local file or folder (``~`` expanded); read with local files only
a hub id    ``org/name``: only where a hub model is accepted (``describe.model``),
            downloaded only because the user asked for it
==========  ==================================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from qfeat.errors import DatasetError, OptionError, without_unsafe_advice

Kind = Literal["random", "none", "file", "folder", "hub", "missing"]
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    kind: Kind
    text: str

    @property
    def path(self) -> Path | None:
        return Path(self.text).expanduser() if self.kind in ("file", "folder") else None


def parse_source(text: str | None, allow_hub: bool = False) -> ModelSource:
    """Classify a weights setting. A hub id is recognised only with ``allow_hub`` and
    only when no local path of that name exists; a path that does not exist is
    ``missing``."""
    text = (text or "").strip()
    if text == "random":
        return ModelSource("random", text)
    if not text:
        return ModelSource("none", text)
    path = Path(text).expanduser()
    if path.is_file():
        return ModelSource("file", text)
    if path.is_dir():
        return ModelSource("folder", text)
    if allow_hub and looks_like_hub_id(text):
        return ModelSource("hub", text)
    return ModelSource("missing", text)


def looks_like_hub_id(text: str) -> bool:
    """``org/name`` with hub-legal characters, not a relative or absolute path."""
    return bool(HUB_ID.match(text)) and not text.startswith((".", "~")) and ".." not in text


def require_file(source: ModelSource, setting: str, what: str, example: str) -> Path:
    """The local file ``source`` names, or a DatasetError that says which ``--set`` to
    pass (``example``: the file name a user would give)."""
    if source.kind == "file":
        return source.path
    raise DatasetError(
        f"{what} weights not found at '{source.text}'; pass --set {setting}=/path/{example} "
        f"(or set {setting} in the preset; =random for seeded random weights)"
    )


# the file open_clip's create_model("local-dir:FOLDER") loads, in its own order of choice
LOCAL_DIR_PREFERRED = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                       "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth",
                       "model.safetensors", "pytorch_model.bin", "pytorch_model.pth",
                       "model.pth")  # fmt: skip


def local_dir_weights(folder: Path) -> Path | None:
    """The weights file open_clip loads from a ``local-dir:`` folder, or None (open_clip
    then builds the model with *random* weights and only logs a warning)."""
    found = sorted(p for ext in ("safetensors", "bin", "pth") for p in folder.glob(f"*.{ext}"))
    found.sort(key=lambda p: p.suffix != ".safetensors")  # stable: then by name
    preferred = [p for name in LOCAL_DIR_PREFERRED for p in found if p.name == name]
    return (preferred or found or [None])[0]


def local_dir(model: str) -> Path | None:
    """The folder of an open_clip ``local-dir:FOLDER`` model name, else None."""
    return (
        Path(model.removeprefix("local-dir:")).expanduser()
        if model.startswith("local-dir:")
        else None
    )


def require_open_clip_folder(model: str, setting: str, pretrained: str = "") -> Path:
    """The weights file open_clip loads for ``local-dir:`` model ``model`` (``setting``:
    e.g. ``clip.model``; the folder is its parent), or an error before any work: a
    ``pretrained`` file given too (OptionError), no
    ``open_clip_config.json``, no weights file (open_clip would build random weights and
    only log it), or a pickle that is not plain tensors."""
    if pretrained:
        section = setting.split(".")[0]
        raise OptionError(
            f"{setting}={model} takes its weights from the folder; leave {section}.pretrained "
            f"empty (it is {pretrained!r})"
        )
    folder = local_dir(model)
    if folder is None or not (folder / "open_clip_config.json").is_file():
        raise DatasetError(
            f"{setting}={model}: {folder} holds no open_clip_config.json (a local-dir: model "
            "is a folder laid out like open_clip's hub repos)"
        )
    weights = local_dir_weights(folder)
    if weights is None:
        raise DatasetError(
            f"{setting}={model}: {folder} holds no weights file; put the model's "
            "open_clip_model.safetensors (or open_clip_pytorch_model.bin) beside its "
            "open_clip_config.json"
        )
    require_plain_weights(weights, setting)
    return weights


def _safetensors_problem(path: Path) -> str | None:
    """None when ``path``'s content is a safetensors file (its header parses)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as exc:  # noqa: BLE001 - any parse failure: not safetensors
        return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return None


def require_plain_weights(path: Path, setting: str) -> None:
    """Refuse, before any work starts, a weights file that is not plain tensors, judged
    by its content, not its name.

    A safetensors file (its header parses) passes when it is named ``.safetensors``; a
    file named so that is something else (a pickle renamed) is refused, and so is a
    safetensors file under another name (the loaders would unpickle it). Any other file
    is unpickled the way every loader in qfeat does (``weights_only=True``), memory-
    mapped so a multi-GB checkpoint costs no read: a pickle that would import or call
    anything (code execution) fails here, in the driver, once, with a message naming
    the setting, instead of in every worker after retries. Folders need no check."""
    path = Path(path)
    if not path.is_file():
        return
    if path.stat().st_size == 0:
        raise DatasetError(
            f"{setting}={path} is empty (0 bytes): an interrupted download? get it again"
        )
    named = path.suffix.lower() == ".safetensors"
    problem = _safetensors_problem(path)
    if named and problem is None:
        return
    if named:
        raise DatasetError(
            f"{setting}={path} is named .safetensors but is not a safetensors file "
            f"({problem}); refused before any work. Give the file its publisher ships"
        )
    if problem is None:
        raise DatasetError(
            f"{setting}={path} is a safetensors file under another name; rename it to "
            f"{path.with_suffix('.safetensors').name}"
        )
    _require_plain_pickle(path, setting)


def _require_plain_pickle(path: Path, setting: str) -> None:
    import pickle

    import torch

    try:
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except pickle.UnpicklingError as exc:
        text = without_unsafe_advice(str(exc))
        lines = [line.strip() for line in re.split(r"\n|(?<=\.) ", text) if line.strip()]
        said = [x for x in lines if "global" in x.lower()]
        if said:
            raise DatasetError(
                f"{setting}={path} is not a plain weights file: unpickling it would import or "
                f"run code ({said[0][:200]}); refused. Use the checkpoint as its publisher "
                "ships it, or a .safetensors file"
            ) from None
        what = next((x for x in lines if "unsupported" in x.lower()), lines[-1] if lines else "")
        raise DatasetError(
            f"{setting}={path} cannot be read as a plain PyTorch weights file ({what[:200]}); "
            "is it complete, and the right file?"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise DatasetError(
            f"{setting}={path} cannot be read as a PyTorch weights file "
            f"({without_unsafe_advice(str(exc).strip()) or type(exc).__name__}); is it "
            "complete, and the right file?"
        ) from None


__all__ = [
    "ModelSource",
    "local_dir",
    "local_dir_weights",
    "looks_like_hub_id",
    "parse_source",
    "require_file",
    "require_open_clip_folder",
    "require_plain_weights",
]
