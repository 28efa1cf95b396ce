"""Whether a cached stage is the one a run was trained on: the one check behind
``qfeat evaluate``, ``qfeat predict``, ``qfeat train --init`` and ``qfeat import qclip``.

A run records each stage it read (``config.json`` ``stages``: the stage's resolved
settings and its model identity, with the weights' sha256). A cached stage matches when
its model identity is the same (the same weights file content, hub revision or seeded
architecture) and every setting is the same, the seed aside and the weights path aside
(the identity already says whether the file holds the same weights; a file moved to
another path is the same model, another file at the same path is not).

For a Q-CLIP release checkpoint, :func:`release_start_layer` finds which vision blocks
its adapters were trained on: the release saves an adapter for every block, and an
adapter never used keeps its LayerNorm at its initial values (weight 1, bias 0).
"""

from __future__ import annotations

import json
import re
from typing import Any

from qfeat.errors import DatasetError

IGNORED = ("seed",)


def _plain(value: Any) -> Any:
    """JSON round trip: a record read from config.json compares equal to a live one."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _free_keys(stage: str) -> tuple[str, ...]:
    """Settings of ``stage`` that may differ: the seed, and its weights path (the model
    identity compares the weights themselves)."""
    from qfeat.pipeline.stages import STAGES

    cls = STAGES.get(stage)
    path = getattr(cls, "weights_setting", None) if cls is not None else None
    return (*IGNORED, path) if path and path != "model" else IGNORED


def stage_difference(stage: str, trained: dict[str, Any], cached: dict[str, Any]) -> str | None:
    """How the cached stage ``cached`` (its manifest) differs from ``trained`` (a run's
    stage record: ``{"config", "model"}``), in words; None when it is the same."""
    model, want = _plain(cached["model"]), _plain(trained["model"])
    if model != want:
        return f"its model is {_model_words(model)}, the run's was {_model_words(want)}"
    free = _free_keys(stage)
    have, had = _plain(cached["config"]), _plain(trained["config"])
    for key in sorted(set(have) | set(had)):
        if key not in free and have.get(key) != had.get(key):
            return (
                f"it was made with {stage}.{key}={have.get(key)!r}, the run was trained on "
                f"{stage}.{key}={had.get(key)!r}"
            )
    return None


def _model_words(identity: dict[str, Any]) -> str:
    digest = identity.get("sha256")
    if isinstance(digest, dict):  # a folder: one digest per file
        digest = "+".join(sorted(str(v)[:8] for v in digest.values()))
    extra = f" (sha256 {str(digest)[:12]})" if digest else ""
    for key in ("revision", "seed"):
        if key in identity:
            extra += f" ({key} {identity[key]})"
    return f"{identity.get('name')}{extra}"


def same_stage_model(trained: dict[str, Any], cached: dict[str, Any], stage: str = "") -> bool:
    """Whether a run's stage record and a cached stage's manifest name the same model
    and settings (see :func:`stage_difference`)."""
    return stage_difference(stage or str(cached.get("stage", "")), trained, cached) is None


def require_same_stage(run, name: str, target, dataset: str) -> None:
    """Refuse to score ``dataset``'s cached stage ``target`` (a
    :class:`qfeat.cache.reader.Stage`) with ``run`` (a RunFolder, or anything with
    ``config.stages`` and ``path``) when it differs from the ``name`` stage the run was
    trained on."""
    require_matching(name, run.config.stages[name], target.manifest, dataset, run.path)


def require_matching(name: str, trained: dict, manifest: dict, dataset: str, where) -> None:
    """:func:`stage_difference` as a DatasetError naming both sides and the fix."""
    why = stage_difference(name, trained, manifest)
    if why is not None:
        raise DatasetError(
            f"{dataset}'s {name} cache ({manifest.get('fingerprint')}) is not the one the run "
            f"was trained on ({trained.get('fingerprint')}): {why}; recompute it with the "
            f"run's settings (qfeat stage {name} {dataset} --set {name}.<key>=..., see "
            f"{where}/config.json)"
        )


RELEASE_NORM = re.compile(r"encoder_adapters\.(\d+)\.ln\.(weight|bias)$")


def release_start_layer(state: dict[str, Any]) -> tuple[int | None, int]:
    """``(adapter_start_layer, L)`` of a Q-CLIP release state dict: the first block whose
    adapter was trained (its LayerNorm moved from weight 1 / bias 0), and the number of
    vision blocks (the highest adapter index + 1). ``None`` when every saved adapter is
    at its initial values (nothing tells which were trained). A checkpoint holding only
    some blocks' adapters (``qfeat export qclip``) starts at its first one."""
    import torch

    norms: dict[int, list] = {}
    for key, value in state.items():
        if m := RELEASE_NORM.match(key):
            norms.setdefault(int(m[1]), []).append((m[2], value))
    if not norms:
        return None, 0
    blocks = max(norms) + 1
    moved = [
        i
        for i, parts in sorted(norms.items())
        if any(not torch.equal(v, torch.full_like(v, 1.0 if kind == "weight" else 0.0))
               for kind, v in parts)
    ]  # fmt: skip
    if moved:
        return moved[0], blocks
    return (min(norms), blocks) if min(norms) > 0 else (None, blocks)


def require_release_blocks(
    state: dict[str, Any], adapted_blocks: int, dataset: str, start: int | None = None
) -> int:
    """The release's ``adapter_start_layer`` (``start`` when given, else derived), or a
    DatasetError when its K = L - start differs from the cache's ``clip.adapted_blocks``
    (the cache holds the hidden states entering block L - K: another K scores wrong)."""
    found, blocks = release_start_layer(state)
    start = found if start is None else start
    if start is None:
        raise DatasetError(
            "cannot tell which blocks the Q-CLIP checkpoint's adapters were trained on (every "
            "adapter is at its initial values); pass --adapter-start-layer N, the "
            "adapter_start_layer the release was trained with"
        )
    k = blocks - start
    if k != adapted_blocks:
        raise DatasetError(
            f"the Q-CLIP checkpoint was trained with adapter_start_layer={start} (K = {k} of "
            f"{blocks} blocks), but {dataset}'s clip cache holds clip.adapted_blocks="
            f"{adapted_blocks}; recompute it with --set clip.adapted_blocks={k}"
        )
    return start


__all__ = [
    "release_start_layer",
    "require_matching",
    "require_release_blocks",
    "require_same_stage",
    "same_stage_model",
    "stage_difference",
]
