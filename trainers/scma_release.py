"""Checkpoints of the Q-CLIP authors' release (xiao-mi-d/Q-CLIP) and qfeat SCMA runs.

The release's ``train.py`` saves ``{"state_dict": model.state_dict(), ...}`` of its whole
``QCLIP`` (the frozen PE under ``clip_model.``) and loads one with ``strict=False`` after
stripping ``module.``. Its trainable names, and qfeat's (:class:`qfeat.trainers.scma.QCLIP`):

- ``encoder_adapters.{i}.down_proj`` / ``up_proj`` / ``ln`` (one per vision block, used
  after block ``i >= adapter_start_layer``) <-> ``scma.down`` / ``up`` / ``norm`` ``.{d}``,
  ``d = i - (L - K)``;
- ``shared_core.{0,2}`` <-> ``scma.core.{0,2}``;
- ``proj_adapter.{0,1,3}`` (width -> r -> r -> width) <-> ``scma.proj.{0,1,3}`` (width ->
  r -> r -> embedding size);
- ``image_adapter_weight`` / ``text_adapter_weight`` <-> ``scma.alpha.img`` / ``txt``;
- ``image_proj_adapter_weight`` / ``text_proj_adapter_weight`` <-> ``scma.beta.img`` /
  ``txt``;
- ``context_tokens`` ``[1, 3, width]`` <-> ``context`` ``[3, width]``;
- ``score_proj`` ``[5, 1]`` <-> ``score_proj``.

The release adds its projection adapter (width outputs) to the projected embedding, so
it only exists for towers whose width equals the embedding size (PE-Core-L: 1024).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from qfeat.errors import DatasetError
from qfeat.trainers.scma import mode_of

GATES = {
    "scma.alpha.img": "image_adapter_weight",
    "scma.alpha.txt": "text_adapter_weight",
    "scma.beta.img": "image_proj_adapter_weight",
    "scma.beta.txt": "text_proj_adapter_weight",
}
PARTS = {"down": "down_proj", "up": "up_proj", "norm": "ln"}
ADAPTER = re.compile(r"scma\.(down|up|norm)\.(\d+)\.(weight|bias)$")
RELEASE_ADAPTER = re.compile(r"encoder_adapters\.(\d+)\.(down_proj|up_proj|ln)\.(weight|bias)$")


def to_release(state: dict[str, torch.Tensor], blocks: int, k: int) -> dict[str, torch.Tensor]:
    """qfeat's trainable SCMA weights in the release's names (``blocks`` = L, ``k`` = K)."""
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name == "context":
            out["context_tokens"] = value.unsqueeze(0)
        elif name == "score_proj":
            out[name] = value
        elif name in GATES:
            out[GATES[name]] = value
        elif m := ADAPTER.match(name):
            out[f"encoder_adapters.{blocks - k + int(m[2])}.{PARTS[m[1]]}.{m[3]}"] = value
        elif name.startswith("scma.core."):
            out["shared_core." + name.removeprefix("scma.core.")] = value
        elif name.startswith("scma.proj."):
            out["proj_adapter." + name.removeprefix("scma.proj.")] = value
        else:
            raise ValueError(f"no release name for qfeat weight {name}")
    return out


def from_release(state: dict[str, torch.Tensor], blocks: int, k: int) -> dict[str, torch.Tensor]:
    """The release's weights as qfeat's trainable SCMA state: the adapters of the last
    ``k`` of ``blocks`` blocks; the frozen ``clip_model.``, the prompt buffers and the
    adapters of earlier blocks (unused when ``adapter_start_layer = L - K``) are left."""
    require_release(state)
    names = {v: k_ for k_, v in GATES.items()}
    parts = {v: k_ for k_, v in PARTS.items()}
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name == "context_tokens":
            out["context"] = value.reshape(-1, value.shape[-1])
        elif name == "score_proj":
            out[name] = value
        elif name in names:
            out[names[name]] = value
        elif m := RELEASE_ADAPTER.match(name):
            depth = int(m[1]) - (blocks - k)
            if 0 <= depth < k:
                out[f"scma.{parts[m[2]]}.{depth}.{m[3]}"] = value
        elif name.startswith("shared_core."):
            out["scma.core." + name.removeprefix("shared_core.")] = value
        elif name.startswith("proj_adapter."):
            out["scma.proj." + name.removeprefix("proj_adapter.")] = value
    return out


def require_release(state: dict[str, torch.Tensor]) -> int:
    """The shared width ``r`` of a release state dict; a DatasetError when it is not one."""
    if "score_proj" not in state or "shared_core.0.weight" not in state:
        raise DatasetError(
            "not a Q-CLIP checkpoint: no score_proj / shared_core weights (expected what the "
            "release's train.py saves: {'state_dict': QCLIP.state_dict()})"
        )
    return int(state["shared_core.0.weight"].shape[0])


def read_release(path: Path | str) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint the release saved (no pickle code runs)."""
    from qfeat.pipeline.models.pe_meta import unwrap

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable or unsafe file: one message
        raise DatasetError(f"{path} cannot be read as a plain PyTorch checkpoint ({exc})") from exc
    return unwrap(checkpoint)


def release_shape(model) -> tuple[int, int]:
    """``(L, width)`` of a built CLIP model's vision tower."""
    from qfeat.pipeline.models import clip_split

    visual = clip_split.visual_tower(model)
    return len(clip_split.vision_blocks(visual)), clip_split.hidden_width(model)


def export_run(run, split: int, out: Path) -> dict[str, Any]:
    """Write split ``split`` of scma run ``run`` as a checkpoint the release loads;
    returns what the release's ``QCLIP`` must be built with."""
    from qfeat.trainers.predict_scma import stage_records
    from qfeat.trainers.scma_train import load_clip_for

    config = run.config
    if config.trainer != "scma":
        raise DatasetError(  # no article to get wrong: "a rsa run"
            f"{run.name} is a run of the {config.trainer} trainer; only scma runs are Q-CLIP"
        )
    states = run.checkpoints()
    if not 0 <= split < len(states):
        raise DatasetError(f"{run.name} has splits 0..{len(states) - 1}, not {split}")
    base, _, clip_cfg = load_clip_for(SimpleNamespace(manifest=stage_records(run)["clip"]))
    blocks, width = release_shape(base)
    k = int(clip_cfg["adapted_blocks"])
    state = run.split_state(split)
    embed = int(state["scma.proj.3.weight"].shape[0])
    if embed != width:
        raise DatasetError(
            f"{run.name}: the release adds its projection adapter (width {width} outputs) to "
            f"the {embed}-d embedding, so it only holds towers whose width equals the "
            f"embedding size (PE-Core-L: 1024 = 1024); {clip_cfg['model']} cannot be exported"
        )
    weights = to_release(state, blocks, k)
    if mode_of(config) == "projection":  # no encoder adapters trained: switch them off
        for gate in ("image_adapter_weight", "text_adapter_weight"):
            weights[gate] = torch.tensor(0.0)
    info = {
        "run": run.name,
        "split": split,
        "adapter_start_layer": blocks - k,
        "shared_dim": int(state["scma.proj.0.weight"].shape[0]),
        "clip_model": str(clip_cfg["model"]),
        "rope": str(clip_cfg.get("rope", "pe")),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": weights, "qfeat": info}, out)
    return info


def import_state(
    checkpoint: Path | str, cache_dir: Path, dataset: str, start: int | None = None
) -> tuple[dict, int, dict]:
    """``(the release's state dict, r, clip config of dataset's cached clip stage)``,
    checked to be a Q-CLIP checkpoint whose trained blocks (its ``adapter_start_layer``:
    ``start``, else derived from the adapters it trained) are the cache's
    ``clip.adapted_blocks``, before any model is built; ``train_scma`` maps it onto the
    model it builds (:func:`from_release`), so the tower is built once."""
    from qfeat.cache.basis import select_basis
    from qfeat.trainers.compat import require_release_blocks
    from qfeat.trainers.scma_train import VIDEO_STAGES

    state = read_release(checkpoint)
    r = require_release(state)
    clip = select_basis(cache_dir, dataset, list(VIDEO_STAGES)).basis.stages["clip"]
    config = dict(clip.manifest["config"])
    require_release_blocks(state, int(config["adapted_blocks"]), dataset, start)
    return state, r, config
