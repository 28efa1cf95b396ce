"""SCMA: exact cached forward, prompt construction, trainable parts, parameter count."""

from __future__ import annotations

import open_clip
import pytest
import torch
from torch import nn

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
    proj = (d * r + r) + (r * r + r) + (r * embed + embed)  # P: width -> r -> r -> D
    expected = k * per_depth + core + proj + 4 + 3 * d + 5  # score_proj: 5 x 1, no bias
    assert model.trainable_parameters() == expected
    projection = build("tiny-pe", k=k, r=r, mode="projection")
    assert projection.trainable_parameters() == proj + 2 + 3 * d + 5


def test_projection_mode_uses_pre_projection_features():
    model = build("tiny-pe", mode="projection")
    pixels = torch.randn(3, 2, 3, 32, 32)
    with torch.no_grad():
        embeddings, pooled, _ = clip_split.encode_frames(model.clip, pixels.flatten(0, 1), 2)
        assert pooled.shape == (6, 64) and embeddings.shape == (6, 32)
        torch.testing.assert_close(clip_split.project(model.clip, pooled), embeddings)
        cached = model.score(model.video_from_pooled(pooled.view(3, 2, 64)))
        torch.testing.assert_close(cached, model.score(model.video_from_pixels(pixels)))


def _reference_score(name: str, model: QCLIP, pixels: torch.Tensor) -> torch.Tensor:
    """The released Q-CLIP forward written out from its formulas, on a hook-free copy of
    the same frozen model and with ``model``'s trainable weights: adapters after blocks
    L-k.., P on the pooled feature before each projection, added to the projected one;
    frame embeddings averaged; cosine similarities times the 5 x 1 score_proj."""
    from open_clip.transformer import text_global_pool

    clip = clip_build.build_clip(name, seed=0)[0].eval()
    s = model.scma

    def adapt(x, depth, gate):
        return x + gate * s.norm[depth](s.up[depth](s.core(s.down[depth](x))))

    visual = clip.visual
    blocks = clip_split.vision_blocks(visual)
    start = len(blocks) - model.k
    if name == "tiny-vit":
        x = visual._embeds(pixels.flatten(0, 1))
        for i, blk in enumerate(blocks):
            x = blk(x)
            x = adapt(x, i - start, s.alpha["img"]) if i >= start else x
        pooled = visual._pool(x)[0]
        projected = pooled @ visual.proj
    else:
        trunk = visual.trunk
        x, rope = trunk._pos_embed(trunk.patch_embed(pixels.flatten(0, 1)))
        x = trunk.norm_pre(x)
        for i, blk in enumerate(blocks):
            x = blk(x, rope=rope)
            x = adapt(x, i - start, s.alpha["img"]) if i >= start else x
        pooled = trunk.forward_head(trunk.norm(x), pre_logits=True)
        projected = trunk.head(pooled)
    frames = projected + s.beta["img"] * s.proj(pooled)
    video = frames.view(*pixels.shape[:2], -1).mean(dim=1)

    text = getattr(clip, "text", None) or clip
    ids = model.prompt_ids
    x = text.token_embedding(ids)
    x[:, 1:4] = model.context
    x = x + text.positional_embedding
    text_blocks = text.transformer.resblocks
    start = len(text_blocks) - model.k  # the last k blocks of each tower (equal for PE)
    for i, blk in enumerate(text_blocks):
        x = blk(x, attn_mask=text.attn_mask)
        x = adapt(x, i - start, s.alpha["txt"]) if i >= start else x
    pooled_text = text_global_pool(text.ln_final(x), ids, "argmax")
    prompts = pooled_text @ text.text_projection + s.beta["txt"] * s.proj(pooled_text)
    sims = nn.functional.normalize(video, dim=-1) @ nn.functional.normalize(prompts, dim=-1).T
    return (sims @ model.score_proj).view(-1)


@pytest.mark.parametrize("name", ["tiny-pe", "tiny-vit"])
def test_scores_equal_the_released_formulas(name):
    """Issue 16.1: the projection adapter reads the pooled feature before the projection
    (not the projected embedding), in both towers; the score map is 5 x 1 with no bias."""
    model = build(name, k=2)
    pixels = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        ours = model.score(model.video_from_pixels(pixels))
        reference = _reference_score(name, model, pixels)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert model.score_proj.shape == (5, 1)


def test_checkpoints_of_the_old_layout_are_refused():
    """Runs saved before the released score map and P placement (a 5 -> 1 map with a
    bias, P reading the projected embedding) must not score with random weights."""
    from qfeat.errors import DatasetError
    from qfeat.trainers.loop import load_trained, trainable_state

    model = build("tiny-pe")
    state = trainable_state(model)
    assert load_trained(build("tiny-pe"), state, "run x") is not None
    old = {k: v for k, v in state.items() if k != "score_proj"}
    old.update({"head.weight": torch.zeros(1, 5), "head.bias": torch.zeros(1)})
    with pytest.raises(DatasetError, match="run x lacks score_proj.*retrain"):
        load_trained(build("tiny-pe"), old, "run x")
    resized = {**state, "scma.proj.0.weight": torch.zeros(8, 32)}  # P on the D=32 embedding
    with pytest.raises(DatasetError, match="does not fit this model"):
        load_trained(build("tiny-pe"), resized, "run x")
