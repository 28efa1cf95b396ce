"""CLIP vision towers split at block ``L - K`` for Q-CLIP frame features.

For every frame the ``clip`` stage caches

* ``pooled``: the pooled, projected image embedding ``[D]``, *not* L2-normalised (exactly
  ``model.encode_image(pixels, normalize=False)``), and
* ``hidden``: the token sequence *entering* vision block ``L - K`` (``[tokens, width]``),
  where ``L`` is the number of transformer blocks of the vision tower and ``K`` the number
  of adapted (last) blocks.

A trainer later runs only blocks ``L - K .. L - 1`` plus everything after them (final
norm, pooling, projection) on the cached hidden states: :func:`finish_from_hidden`.

Two vision-tower families are supported, both as built by ``open_clip.create_model``:

``open_clip.transformer.VisionTransformer`` (``ViT-B-16`` etc.)
    ``_embeds`` (conv1 -> class token -> positional embedding -> patch dropout -> ln_pre),
    ``transformer.resblocks``, then ``_pool`` (ln_post / attentional pooler /
    ``final_ln_after_pool`` / tok-or-avg pooling) and ``@ proj``. One class token, no
    rotary embedding.

``open_clip.timm_model.TimmModel`` with a timm ``Eva`` trunk (Meta Perception Encoder
``PE-Core-*``)
    ``trunk.patch_embed`` -> ``trunk._pos_embed`` (class/register tokens, absolute
    position embedding, patch dropout, and the *rotary* embedding) -> ``trunk.norm_pre``
    -> ``trunk.blocks[i](x, rope=...)`` -> ``trunk.norm`` -> ``trunk.forward_head``
    (attention pool ``map``, fc_norm, head linear = CLIP projection for PE) -> the
    open_clip ``head`` (empty for PE). The rotary embedding does not depend on the
    image, only on the patch grid, so :func:`finish_from_hidden` recomputes it with the
    same branch ``_pos_embed`` takes (``rope.get_embed()``; per-block slices for
    ``rope_type='mixed'``) and passes it to every remaining block.

Patch dropout happens before block 0, so it never affects :func:`finish_from_hidden`;
in eval mode it is off, and cached hidden states always hold every token.

The models come from :func:`qfeat.pipeline.models.clip_build.build_clip` (local files only;
``tiny-vit`` and ``tiny-pe`` are toy-size configs of the same classes).
"""

from __future__ import annotations

import logging
import numbers

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "encode_frames",
    "encode_with_hidden",
    "finish_from_hidden",
    "pool_from_hidden",
    "pool_from_pixels",
    "project",
    "hidden_width",
    "num_blocks",
    "num_tokens",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- tower access


def visual_tower(model: nn.Module) -> nn.Module:
    """The vision tower: ``model.visual`` for CLIP models, else ``model`` itself."""
    return getattr(model, "visual", model)


def tower_kind(visual: nn.Module) -> str:
    """``"openclip"`` (open_clip VisionTransformer) or ``"eva"`` (TimmModel + timm Eva)."""
    from open_clip.timm_model import TimmModel
    from open_clip.transformer import VisionTransformer

    if isinstance(visual, VisionTransformer):
        return "openclip"
    if isinstance(visual, TimmModel):
        from timm.models.eva import Eva

        if isinstance(visual.trunk, Eva):
            return "eva"
        raise TypeError(f"timm trunk {type(visual.trunk).__name__} is not supported (only Eva/PE)")
    raise TypeError(f"vision tower {type(visual).__name__} cannot be split into blocks")


def vision_blocks(visual: nn.Module) -> nn.ModuleList:
    return visual.transformer.resblocks if tower_kind(visual) == "openclip" else visual.trunk.blocks


def num_blocks(model: nn.Module) -> int:
    """``L``: the number of transformer blocks of the vision tower (24 for PE-Core-L)."""
    return len(vision_blocks(visual_tower(model)))


def num_tokens(model: nn.Module) -> int:
    """Tokens in the hidden sequence: patches plus class/register tokens (577 for
    PE-Core-L-14-336: 24 x 24 patches + 1 class token)."""
    visual = visual_tower(model)
    if tower_kind(visual) == "openclip":
        return visual.grid_size[0] * visual.grid_size[1] + 1
    trunk = visual.trunk
    return trunk.patch_embed.num_patches + trunk.num_prefix_tokens


def hidden_width(model: nn.Module) -> int:
    """Width of a hidden token (1024 for PE-Core-L)."""
    visual = visual_tower(model)
    return visual.transformer.width if tower_kind(visual) == "openclip" else visual.trunk.embed_dim


def _split_index(model: nn.Module, k: int) -> int:
    """``L - k`` after checking ``1 <= k <= L``."""
    total = num_blocks(model)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= total:
        raise ValueError(f"adapted blocks k={k!r} must be an int in [1, {total}]")
    return total - int(k)


# --------------------------------------------------------------------------- open_clip ViT


def oc_run_blocks(visual: nn.Module, x: Tensor, start: int, stop: int) -> Tensor:
    """``visual.transformer.resblocks[start:stop]`` on ``x`` ``[B, N, C]`` (batch first in
    and out, whatever the transformer's layout), checkpointed like open_clip when enabled."""
    tr = visual.transformer
    if not tr.batch_first:
        x = x.transpose(0, 1).contiguous()
    for blk in tr.resblocks[start:stop]:
        if tr.grad_checkpointing and torch.is_grad_enabled():
            x = checkpoint(blk, x, use_reentrant=False)
        else:
            x = blk(x)
    return x if tr.batch_first else x.transpose(0, 1)


def _oc_pool(visual: nn.Module, x: Tensor) -> Tensor:
    """``VisionTransformer.forward`` after the blocks, up to (not including) ``proj``."""
    pooled, _ = visual._pool(x)
    return pooled


def _oc_project(visual: nn.Module, pre: Tensor) -> Tensor:
    return pre @ visual.proj if visual.proj is not None else pre


def _oc_head(visual: nn.Module, x: Tensor) -> Tensor:
    """Everything after the blocks, as ``VisionTransformer.forward``: pool, then proj."""
    return _oc_project(visual, _oc_pool(visual, x))


# --------------------------------------------------------------------------- timm Eva (PE)


def _eva_embed(trunk: nn.Module, pixels: Tensor) -> tuple[Tensor, Tensor | None]:
    """Tokens entering block 0 ``[B, N, C]`` and the rotary embedding, exactly as
    ``Eva.forward_features`` computes them (``_pos_embed`` also applies patch dropout)."""
    x = trunk.patch_embed(pixels)
    x, rope = trunk._pos_embed(x)
    return trunk.norm_pre(x), rope


def _eva_rope(trunk: nn.Module) -> Tensor | None:
    """The rotary embedding ``_pos_embed`` gives for a full (no patch dropout) sequence on
    the model's patch grid: ``[N_patches, 2 * head_dim]`` for ``cat`` rope (PE), a
    per-block stack for ``mixed``; ``None`` without rope."""
    rope = trunk.rope
    if rope is None:
        return None
    if trunk.dynamic_img_size or not hasattr(rope, "feat_shape"):
        return rope.get_embed(shape=trunk.patch_embed.grid_size)
    return rope.get_embed()


def _eva_run_blocks(
    trunk: nn.Module, x: Tensor, rope: Tensor | None, start: int, stop: int
) -> Tensor:
    """``trunk.blocks[start:stop]`` with ``rope=`` passed as ``forward_features`` does
    (``rope[i]`` for block ``i`` with depth-dependent ``mixed`` rope)."""
    mixed = getattr(trunk, "rope_mixed", False) and rope is not None
    for i in range(start, stop):
        blk, r = trunk.blocks[i], (rope[i] if mixed else rope)
        if trunk.grad_checkpointing and torch.is_grad_enabled():
            x = checkpoint(blk, x, rope=r, use_reentrant=False)
        else:
            x = blk(x, rope=r)
    return x


def _eva_pool(visual: nn.Module, x: Tensor) -> Tensor:
    """``TimmModel.forward`` after the blocks, up to (not including) the projection:
    trunk norm, attention pool, fc_norm (``forward_head(pre_logits=True)``)."""
    trunk = visual.trunk
    return trunk.forward_head(trunk.norm(x), pre_logits=True)


def _eva_project(visual: nn.Module, pre: Tensor) -> Tensor:
    """The trunk's head linear (the CLIP projection for PE), then open_clip's head."""
    return visual.head(visual.trunk.head(pre))


def _eva_head(visual: nn.Module, x: Tensor) -> Tensor:
    """Everything after the blocks, as ``TimmModel.forward``: trunk norm, trunk head
    (attention pool, fc_norm, projection), then open_clip's head."""
    return _eva_project(visual, _eva_pool(visual, x))


# --------------------------------------------------------------------------- public split


def _check_pixels(visual: nn.Module, pixels: Tensor) -> None:
    if pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ValueError(f"pixels must be [B, 3, H, W], got {tuple(pixels.shape)}")
    if visual.training:
        log.warning("encode_with_hidden on a vision tower in train mode (patch dropout, drop path)")


def _check_hidden(model: nn.Module, hidden: Tensor) -> None:
    want = (num_tokens(model), hidden_width(model))
    if hidden.ndim != 3 or tuple(hidden.shape[1:]) != want:
        raise ValueError(f"hidden must be [B, {want[0]}, {want[1]}], got {tuple(hidden.shape)}")


@torch.no_grad()
def encode_with_hidden(model: nn.Module, pixels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """One forward returning the image embedding and the tokens entering block ``L - k``.

    Runs under ``torch.no_grad`` (it is the caching pass). Not ``inference_mode``: its
    outputs would be inference tensors that :func:`finish_from_hidden` cannot take under
    autograd. A caching loop may still wrap its calls in ``torch.inference_mode()``.

    Args:
        model: a CLIP model from :func:`build_clip` / ``open_clip.create_model`` (or its
            ``visual`` tower), normally in eval mode.
        pixels: ``[B, 3, H, W]`` normalised images (:class:`PreprocessInfo`), in the
            model's dtype and device.
        k: number of adapted last blocks, ``1 <= k <= L``.

    Returns:
        ``(pooled, hidden)``: ``pooled`` ``[B, D]``, projected but *not* L2-normalised, equal
        to ``model.encode_image(pixels, normalize=False)``; ``hidden`` ``[B, tokens, width]``
        (batch first, class/register tokens first), same dtype as the tower's activations.

    Raises:
        ValueError: ``k`` outside ``[1, L]`` or ``pixels`` not ``[B, 3, H, W]``.
    """
    embeddings, _, hidden = encode_frames(model, pixels, k)
    return embeddings, hidden


@torch.no_grad()
def encode_frames(model: nn.Module, pixels: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(embeddings, pooled, hidden)``: :func:`encode_with_hidden`'s two outputs plus
    ``pooled`` ``[B, width]``, the pooled feature before the projection (so that
    ``embeddings == project(model, pooled)``), in one forward."""
    visual = visual_tower(model)
    split, total = _split_index(model, k), num_blocks(model)
    _check_pixels(visual, pixels)
    if tower_kind(visual) == "openclip":
        x = visual._embeds(pixels)
        hidden = oc_run_blocks(visual, x, 0, split)
        pre = _oc_pool(visual, oc_run_blocks(visual, hidden, split, total))
    else:
        x, rope = _eva_embed(visual.trunk, pixels)
        hidden = _eva_run_blocks(visual.trunk, x, rope, 0, split)
        pre = _eva_pool(visual, _eva_run_blocks(visual.trunk, hidden, rope, split, total))
    return project(model, pre), pre, hidden


def finish_from_hidden(model: nn.Module, hidden: Tensor, k: int) -> Tensor:
    """Run blocks ``L - k .. L - 1`` and the head on cached hidden states.

    No grad mode is forced: under autograd (train mode, grad checkpointing honoured) it
    back-propagates into the last ``k`` blocks, the head and ``hidden``.

    Args:
        model: the model (or ``visual`` tower) that produced ``hidden``.
        hidden: ``[B, tokens, width]`` from :func:`encode_with_hidden` with the same ``k``
            (all tokens: no patch dropout), in the model's dtype and device.
        k: number of adapted last blocks, ``1 <= k <= L``.

    Returns:
        ``[B, D]`` projected, not L2-normalised embedding, equal to
        ``model.encode_image(pixels, normalize=False)`` for the frames ``hidden`` came from.

    Raises:
        ValueError: ``k`` outside ``[1, L]`` or ``hidden`` of the wrong shape.
    """
    visual = visual_tower(model)
    split, total = _split_index(model, k), num_blocks(model)
    _check_hidden(model, hidden)
    if tower_kind(visual) == "openclip":
        return _oc_head(visual, oc_run_blocks(visual, hidden, split, total))
    trunk = visual.trunk
    x = _eva_run_blocks(trunk, hidden, _eva_rope(trunk), split, total)
    return _eva_head(visual, x)


def _run_to_end(model: nn.Module, hidden: Tensor, k: int) -> Tensor:
    visual = visual_tower(model)
    split, total = _split_index(model, k), num_blocks(model)
    if tower_kind(visual) == "openclip":
        return oc_run_blocks(visual, hidden, split, total)
    trunk = visual.trunk
    return _eva_run_blocks(trunk, hidden, _eva_rope(trunk), split, total)


def pool_from_hidden(model: nn.Module, hidden: Tensor, k: int) -> Tensor:
    """As :func:`finish_from_hidden`, but the pooled feature *before* the projection
    ``[B, width]`` (what Q-CLIP's projection adapter reads); :func:`project` maps it to the
    embedding :func:`finish_from_hidden` returns."""
    _check_hidden(model, hidden)
    visual = visual_tower(model)
    x = _run_to_end(model, hidden, k)
    return _oc_pool(visual, x) if tower_kind(visual) == "openclip" else _eva_pool(visual, x)


def pool_from_pixels(model: nn.Module, pixels: Tensor) -> Tensor:
    """The pre-projection pooled feature ``[B, width]`` of images, every block run (with
    any hooks on them)."""
    visual = visual_tower(model)
    _check_pixels(visual, pixels)
    if tower_kind(visual) == "openclip":
        x = oc_run_blocks(visual, visual._embeds(pixels), 0, num_blocks(model))
        return _oc_pool(visual, x)
    x, rope = _eva_embed(visual.trunk, pixels)
    return _eva_pool(visual, _eva_run_blocks(visual.trunk, x, rope, 0, num_blocks(model)))


def project(model: nn.Module, pre: Tensor) -> Tensor:
    """The vision tower's projection of pre-projection pooled features ``[..., width]``."""
    visual = visual_tower(model)
    return (
        _oc_project(visual, pre) if tower_kind(visual) == "openclip" else _eva_project(visual, pre)
    )
