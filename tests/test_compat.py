"""The one compatibility check of a cached stage against a run (trainers/compat.py),
and the Q-CLIP release's trained blocks."""

from __future__ import annotations

import pytest
import torch

from qfeat.errors import DatasetError
from qfeat.trainers.compat import release_start_layer, require_release_blocks, stage_difference

CLIP = {"model": "PE-Core-L-14-336", "pretrained": "/w/pe.pt", "adapted_blocks": 6, "seed": 0}


def record(sha: str = "a" * 64, **config) -> dict:
    return {"model": {"name": "PE-Core-L-14-336", "sha256": sha}, "config": {**CLIP, **config}}


def test_same_model_and_settings_match_whatever_the_path_and_seed():
    assert stage_difference("clip", record(), record()) is None
    # the file moved (same sha256) and another seed: the same cached features
    assert stage_difference("clip", record(), record(pretrained="/x/pe.pt", seed=3)) is None


def test_another_weights_file_at_the_same_path_is_refused():
    """The old check compared four keys as strings and accepted this."""
    why = stage_difference("clip", record("b" * 64), record("a" * 64))
    assert why is not None and "bbbbbbbbbbbb" in why and "aaaaaaaaaaaa" in why


def test_another_setting_names_both_values():
    why = stage_difference("clip", record(), record(adapted_blocks=4))
    assert why == (
        "it was made with clip.adapted_blocks=4, the run was trained on clip.adapted_blocks=6"
    )


def release(blocks: int, trained: range, width: int = 4) -> dict[str, torch.Tensor]:
    """A release state dict with an adapter per block; ``trained`` blocks' LayerNorms
    moved from their initial values, as training leaves them."""
    state = {"score_proj": torch.zeros(5, 1), "shared_core.0.weight": torch.zeros(2, 2)}
    for i in range(blocks):
        moved = 0.01 if i in trained else 0.0
        state[f"encoder_adapters.{i}.ln.weight"] = torch.ones(width) + moved
        state[f"encoder_adapters.{i}.ln.bias"] = torch.zeros(width)
        state[f"encoder_adapters.{i}.down_proj.weight"] = torch.randn(2, width)
    return state


def test_release_blocks_are_derived_from_the_trained_adapters():
    assert release_start_layer(release(24, range(18, 24))) == (18, 24)
    assert require_release_blocks(release(24, range(18, 24)), 6, "konvid") == 18
    with pytest.raises(DatasetError) as refused:
        require_release_blocks(release(24, range(20, 24)), 6, "konvid")
    message = str(refused.value)
    assert "adapter_start_layer=20 (K = 4 of 24 blocks)" in message
    assert "clip.adapted_blocks=6" in message and "--set clip.adapted_blocks=4" in message


def test_an_untrained_release_needs_its_start_layer():
    untouched = release(24, range(0))
    assert release_start_layer(untouched) == (None, 24)
    with pytest.raises(DatasetError, match="--adapter-start-layer"):
        require_release_blocks(untouched, 6, "konvid")
    assert require_release_blocks(untouched, 6, "konvid", start=18) == 18
    with pytest.raises(DatasetError, match="adapter_start_layer=12"):
        require_release_blocks(untouched, 6, "konvid", start=12)


def test_an_exported_run_holds_only_its_adapted_blocks():
    state = release(24, range(18, 24))
    exported = {k: v for k, v in state.items() if not k.startswith(
        tuple(f"encoder_adapters.{i}." for i in range(18)))}  # fmt: skip
    assert release_start_layer(exported) == (18, 24)
