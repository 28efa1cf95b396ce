"""SCMA: exact cached forward, prompt construction, trainable parts, parameter count."""

from __future__ import annotations

import open_clip
import pytest
import torch

from qfeat.pipeline.models import clip_build, clip_split
from qfeat.trainers.scma import LEVELS, QCLIP


def build(name: str, k: int = 2, r: int = 8, mode: str = "full") -> QCLIP:
    clip, _ = clip_build.build_clip(name, seed=0)
    tokenizer = open_clip.get_tokenizer(clip_build.OPEN_CLIP_NAMES[name])
    model = QCLIP(clip, tokenizer, k=k, r=r, mode=mode)
    torch.manual_seed(1)
    with torch.no_grad():  # move the adapters away from their init so they matter
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.2)
    return model


@pytest.mark.parametrize("name", ["tiny-pe", "tiny-vit"])
@pytest.mark.parametrize("k", [1, 2])
def test_cached_forward_equals_full_model(name, k):
    model = build(name, k=k)
    pixels = torch.randn(2, 3, 3, 32, 32)  # 2 videos x 3 frames
    with torch.no_grad():
        full = model.score(model.video_from_pixels(pixels))
        _, hidden = clip_split.encode_with_hidden(model.clip, pixels.flatten(0, 1), k)
        cached = model.score(model.video_from_hidden(hidden.view(2, 3, *hidden.shape[1:])))
    torch.testing.assert_close(cached, full, rtol=1e-4, atol=1e-6)
    # the adapters are really in the path: without them the score differs
    plain = QCLIP(clip_build.build_clip(name, seed=0)[0],
                  open_clip.get_tokenizer(clip_build.OPEN_CLIP_NAMES[name]), k=k, r=8)  # fmt: skip
    with torch.no_grad():
        assert not torch.allclose(plain.score(plain.video_from_pixels(pixels)), full)


def test_only_context_is_learnable_in_the_prompts():
    model = build("tiny-pe")
    token_embedding = model.clip.text.token_embedding
    assert not token_embedding.weight.requires_grad and model.context.requires_grad
    assert model.context.shape == (3, token_embedding.weight.shape[1])
    assert model.prompt_ids.shape[0] == len(LEVELS)
    assert model.ctx_positions.tolist() == [1, 2, 3]
    model.score(torch.randn(4, 32)).sum().backward()
    assert model.context.grad is not None and model.context.grad.abs().sum() > 0
    assert token_embedding.weight.grad is None
    frozen = [n for n, p in model.named_parameters() if n.startswith("clip.") and p.requires_grad]
    assert frozen == []


def test_context_starts_from_the_embedding_of_x():
    clip, _ = clip_build.build_clip("tiny-pe", seed=0)
    tokenizer = open_clip.get_tokenizer(clip_build.OPEN_CLIP_NAMES["tiny-pe"])
    model = QCLIP(clip, tokenizer, k=2, r=8)
    x_row = clip.text.token_embedding.weight[int(tokenizer(["X"])[0][1])]
    assert torch.equal(model.context, x_row.expand(3, -1))


def test_parameter_count_matches_the_architecture():
    d, r, k, embed = 64, 8, 2, 32
    model = build("tiny-pe", k=k, r=r)
    per_depth = (d * r + r) + (r * d + d) + 2 * d
    core = 2 * (r * r + r)
    proj = (embed * r + r) + (r * r + r) + (r * embed + embed)
    expected = k * per_depth + core + proj + 4 + 3 * d + (5 + 1)
    assert model.trainable_parameters() == expected
    projection = build("tiny-pe", k=k, r=r, mode="projection")
    assert projection.trainable_parameters() == proj + 2 + 3 * d + 6


def test_projection_mode_uses_pooled_embeddings():
    model = build("tiny-pe", mode="projection")
    pooled = torch.randn(3, 8, 32)
    scores = model.score(model.video_from_pooled(pooled))
    assert scores.shape == (3,)
