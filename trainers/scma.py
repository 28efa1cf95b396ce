"""The Shared Cross-Modal Adapter (SCMA) of Q-CLIP, as its authors released it.

Frozen CLIP towers; trainable parts only:

* per adapted depth i (the last K blocks of each tower): down-projection D_i (d -> r),
  up-projection U_i (r -> d) and LayerNorm LN_i(d), the same modules for the image and
  the text tower at that depth;
* one core MLP g (r -> r: Linear, GELU, Linear) shared by all depths and both towers;
* after block i of a tower: ``x <- x + alpha_tower * LN_i(U_i(g(D_i(x))))``, scalar gates
  ``alpha_img``, ``alpha_txt`` (init 0.1);
* a projection adapter P (width -> r -> r -> GELU -> D) shared by both towers: it reads
  each tower's pooled feature *before* the projection (vision: after the attention
  pool / ``ln_post`` pooling; text: the EOT token after ``ln_final``) and its output is
  added to the projected embedding, ``e = proj(pooled) + beta_tower * P(pooled)``, scalar
  gates ``beta_img``, ``beta_txt`` (init 0.1). The release writes P: width -> width,
  which is the same for PE-Core (width = D) and undefined otherwise;
* prompts "X X X a video of {bad|poor|fair|good|excellent} quality": the three X
  embeddings are learnable and shared by the five prompts (initialised from the embedding
  of "X"); the level words stay frozen;
* video embedding = mean of the T frame embeddings; score = s @ W, where s_k is the
  cosine similarity to prompt k and W the learned 5 x 1 ``score_proj`` (no bias, no
  softmax, initialised from N(0, 1/5)), as released.

The adapters are attached to the frozen blocks as forward hooks, so the same model runs
from pixels (``encode_image``) and from cached hidden states
(:func:`qfeat.pipeline.models.clip_split.finish_from_hidden`) with identical results.
``mode="projection"`` keeps only P, the prompts and W: it trains from the cached
pre-projection pooled features (no hidden states needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from qfeat.pipeline.levels import LEVELS
from qfeat.pipeline.models import clip_split

TEMPLATE = "X X X a video of {} quality"
N_CONTEXT = 3


def text_tower(model: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    """``(token_embedding, resblocks)`` of a CLIP or CustomTextCLIP text tower."""
    text = getattr(model, "text", None)
    owner = text if text is not None else model
    return owner.token_embedding, owner.transformer.resblocks


def text_pooled(model: nn.Module, ids: Tensor) -> tuple[Tensor, nn.Module | Tensor | None]:
    """``(pooled, projection)``: open_clip's ``encode_text`` up to (not including) the text
    projection (the EOT token after ``ln_final``), and that projection (a parameter, a
    Linear or None). The projection is detached from the tower for the call, so the
    tower's own code pools exactly as ``encode_text`` does."""
    text = getattr(model, "text", None)
    owner = text if text is not None else model
    projection = owner.text_projection
    owner.text_projection = None
    try:
        pooled = model.encode_text(ids)
    finally:
        owner.text_projection = projection
    return pooled, projection


class SCMA(nn.Module):
    def __init__(self, width: int, embed_dim: int, k: int, r: int = 128, gate: float = 0.1):
        super().__init__()
        self.k = k
        self.down = nn.ModuleList(nn.Linear(width, r) for _ in range(k))
        self.up = nn.ModuleList(nn.Linear(r, width) for _ in range(k))
        self.norm = nn.ModuleList(nn.LayerNorm(width) for _ in range(k))
        self.core = nn.Sequential(nn.Linear(r, r), nn.GELU(), nn.Linear(r, r))
        self.alpha = nn.ParameterDict({t: nn.Parameter(torch.tensor(gate)) for t in ("img", "txt")})
        self.proj = nn.Sequential(
            nn.Linear(width, r), nn.Linear(r, r), nn.GELU(), nn.Linear(r, embed_dim)
        )
        self.beta = nn.ParameterDict({t: nn.Parameter(torch.tensor(gate)) for t in ("img", "txt")})

    def block(self, depth: int, x: Tensor, tower: str) -> Tensor:
        delta = self.norm[depth](self.up[depth](self.core(self.down[depth](x))))
        return x + self.alpha[tower] * delta

    def project(self, pooled: Tensor, projected: Tensor, tower: str) -> Tensor:
        """``projected + beta_tower * P(pooled)``: the tower's embedding with the projection
        adapter, from its pooled feature before and after the projection."""
        return projected + self.beta[tower] * self.proj(pooled)


class QCLIP(nn.Module):
    """A frozen open_clip model with SCMA, learnable prompt context and the 5 -> 1 map."""

    def __init__(self, clip: nn.Module, tokenizer, k: int, r: int = 128, mode: str = "full"):
        super().__init__()
        if mode not in ("full", "projection"):
            raise ValueError("mode must be full or projection")
        self.clip, self.k, self.mode = clip.eval(), k, mode
        self._adapters_on = True
        for p in self.clip.parameters():
            p.requires_grad_(False)
        token_embedding, text_blocks = text_tower(clip)
        vision_blocks = clip_split.vision_blocks(clip_split.visual_tower(clip))
        width = clip_split.hidden_width(clip)
        text_width = token_embedding.weight.shape[1]
        if text_width != width:
            raise ValueError(
                f"SCMA shares adapters between towers: vision width {width} != text width "
                f"{text_width} (the Q-CLIP release refuses such models too)"
            )
        if mode == "full" and not 1 <= k <= min(len(vision_blocks), len(text_blocks)):
            raise ValueError(f"k={k} must be in [1, {min(len(vision_blocks), len(text_blocks))}]")
        embed_dim = self._embed_dim(tokenizer)
        self.scma = SCMA(width, embed_dim, k if mode == "full" else 0, r)
        if mode == "projection":
            del self.scma.down, self.scma.up, self.scma.norm, self.scma.core, self.scma.alpha
        ids = tokenizer([TEMPLATE.format(level) for level in LEVELS])
        x_id = int(tokenizer(["X"])[0][1])
        positions = (ids[0] == x_id).nonzero().flatten()[:N_CONTEXT]
        self.register_buffer("prompt_ids", ids, persistent=False)
        self.register_buffer("ctx_positions", positions, persistent=False)
        self.context = nn.Parameter(
            token_embedding.weight[x_id].detach().clone().repeat(N_CONTEXT, 1)
        )
        self.score_proj = nn.Parameter(torch.randn(len(LEVELS), 1) * len(LEVELS) ** -0.5)
        self._hooks = [token_embedding.register_forward_hook(self._inject_context)]
        if mode == "full":
            for depth, blk in enumerate(vision_blocks[len(vision_blocks) - k :]):
                self._hooks.append(blk.register_forward_hook(self._block_hook(depth, "img")))
            for depth, blk in enumerate(text_blocks[len(text_blocks) - k :]):
                self._hooks.append(blk.register_forward_hook(self._block_hook(depth, "txt")))

    def _embed_dim(self, tokenizer) -> int:
        with torch.no_grad():
            return int(self.clip.encode_text(tokenizer(["x"])).shape[-1])

    def _block_hook(self, depth: int, tower: str):
        def hook(module, args, output):
            return self.scma.block(depth, output, tower) if self._adapters_on else output

        return hook

    @contextmanager
    def frozen_clip(self) -> Iterator[nn.Module]:
        """The wrapped CLIP model as it was before the adapters were attached (their block
        hooks pass outputs through; the prompt context only replaces QCLIP's own prompt
        ids): what the clip stage ran when it filled the cache, so a live clip stage can
        run on this same model instead of building a second copy."""
        self._adapters_on = False
        try:
            yield self.clip
        finally:
            self._adapters_on = True

    def _inject_context(self, module, args, output):
        ids = args[0]
        if ids.shape != self.prompt_ids.shape or not torch.equal(ids, self.prompt_ids):
            return output  # not our prompts (e.g. a probe): leave untouched
        output = output.clone()
        output[:, self.ctx_positions] = self.context.to(output.dtype)
        return output

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # -- embeddings ----------------------------------------------------------------------
    def text_embeddings(self) -> Tensor:
        """``[5, D]`` projected prompt embeddings (with adapters), before normalisation."""
        pooled, projection = text_pooled(self.clip, self.prompt_ids)
        if projection is None:
            projected = pooled
        elif isinstance(projection, nn.Linear):
            projected = projection(pooled)
        else:
            projected = pooled @ projection
        return self.scma.project(pooled, projected, "txt")

    def _frames(self, pooled: Tensor, b: int, t: int) -> Tensor:
        """``[B * T, width]`` pre-projection frame features -> ``[B, D]`` video embedding:
        each frame projected with the adapter, then the mean over frames."""
        frames = self.scma.project(pooled, clip_split.project(self.clip, pooled), "img")
        return frames.view(b, t, -1).mean(dim=1)

    def video_from_hidden(self, hidden: Tensor) -> Tensor:
        """``[B, T, tokens, width]`` cached hidden states -> ``[B, D]`` video embedding."""
        b, t = hidden.shape[:2]
        pooled = clip_split.pool_from_hidden(self.clip, hidden.flatten(0, 1), self.k)
        return self._frames(pooled, b, t)

    def video_from_pooled(self, pooled: Tensor) -> Tensor:
        """``[B, T, width]`` cached pre-projection pooled features -> ``[B, D]``
        (projection mode)."""
        b, t = pooled.shape[:2]
        return self._frames(pooled.flatten(0, 1), b, t)

    def video_from_pixels(self, pixels: Tensor) -> Tensor:
        """``[B, T, 3, H, W]`` -> ``[B, D]``: the full model from pixels (tests, benchmarks)."""
        b, t = pixels.shape[:2]
        return self._frames(clip_split.pool_from_pixels(self.clip, pixels.flatten(0, 1)), b, t)

    def similarities(self, video: Tensor) -> Tensor:
        """``[B, 5]`` cosine similarities of video embeddings to the five prompts."""
        text = nn.functional.normalize(self.text_embeddings(), dim=-1)
        return nn.functional.normalize(video, dim=-1) @ text.T

    def score_from_similarities(self, sims: Tensor) -> Tensor:
        """``[B, 5]`` prompt similarities -> ``[B]`` scores."""
        return (sims @ self.score_proj.to(sims.dtype)).squeeze(-1)

    def score(self, video: Tensor) -> Tensor:
        return self.score_from_similarities(self.similarities(video))


def mode_of(config) -> str:
    """An scma run's training mode (``full`` or ``projection``) from its
    :class:`qfeat.trainers.runconfig.RunConfig`."""
    return str(config.detail("mode", "full"))


def clip_of(config) -> dict:
    """An scma run's clip stage config (model, pretrained, adapted_blocks, ...)."""
    return dict(config.detail("clip") or {})
