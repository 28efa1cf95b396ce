"""SAM's image encoder faster, computing the same thing: fused attention and a dtype.

:class:`FusedAttention` is segment-anything's ViT attention with the explicit
``softmax(q·kᵀ·scale + relative positions)·v`` replaced by
:func:`torch.nn.functional.scaled_dot_product_attention`, the decomposed
relative-position term (``rel_h + rel_w``, as ``add_decomposed_rel_pos`` adds it) passed
as an additive bias. It keeps the stock module's parameters under the same names, so
checkpoints load either before or after :func:`fuse_attention`. The installed library
is not edited: qfeat swaps its module into the model it builds.

:func:`set_encoder_dtype` runs only the image encoder in bf16/fp16 (inputs cast in,
features cast back to float32): the encoder is where the time goes; the prompt encoder
and mask decoder stay float32, so mask thresholds and scores see float32 logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling import Sam
from segment_anything.modeling.image_encoder import Attention, get_rel_pos
from torch import nn


class FusedAttention(Attention):
    """segment-anything's ``Attention`` through ``scaled_dot_product_attention``."""

    @classmethod
    def replacing(cls, stock: Attention) -> FusedAttention:
        """A fused module holding ``stock``'s own parameters (shared, not copied)."""
        fused = cls.__new__(cls)
        nn.Module.__init__(fused)
        fused.num_heads, fused.scale = stock.num_heads, stock.scale
        fused.use_rel_pos = stock.use_rel_pos
        fused.qkv, fused.proj = stock.qkv, stock.proj
        if stock.use_rel_pos:
            fused.rel_pos_h, fused.rel_pos_w = stock.rel_pos_h, stock.rel_pos_w
        return fused.train(stock.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, H, W, dim]`` -> ``[B, H, W, dim]``, as the stock module."""
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, HW, head_dim]
        bias = rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w)) if self.use_rel_pos else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


def rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """The decomposed relative-position term of ``add_decomposed_rel_pos`` as an additive
    attention bias: ``q`` ``[B, heads, h*w, C]`` (unscaled, as stock uses it) ->
    ``[B, heads, h*w, h*w]`` in ``q``'s dtype."""
    h, w = size
    b, heads, _, dim = q.shape
    r_h = get_rel_pos(h, h, rel_pos_h).to(q.dtype)  # [h, h, C]
    r_w = get_rel_pos(w, w, rel_pos_w).to(q.dtype)  # [w, w, C]
    r_q = q.reshape(b * heads, h, w, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, r_h)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, r_w)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return bias.reshape(b, heads, h * w, h * w)


def fuse_attention(sam: Sam) -> int:
    """Swap every stock ``Attention`` of ``sam``'s image encoder for a
    :class:`FusedAttention` in place; returns how many were swapped."""
    swapped = 0
    for block in sam.image_encoder.blocks:
        if type(block.attn) is Attention:
            block.attn = FusedAttention.replacing(block.attn)
            swapped += 1
    return swapped


def set_encoder_dtype(sam: Sam, dtype: torch.dtype) -> Sam:
    """Run ``sam``'s image encoder in ``dtype`` (in place): its weights are cast, its
    input is cast to ``dtype`` and its output back to float32. float32 is a no-op."""
    encoder = sam.image_encoder
    if dtype == torch.float32 or getattr(encoder, "_qfeat_dtype", None) == dtype:
        return sam
    encoder.to(dtype)
    if getattr(encoder, "_qfeat_dtype", None) is None:
        encoder.register_forward_pre_hook(lambda m, args: (args[0].to(m._qfeat_dtype), *args[1:]))
        encoder.register_forward_hook(lambda m, args, out: out.float())
    encoder._qfeat_dtype = dtype
    return sam


def speed_up(sam: Sam, dtype: torch.dtype) -> Sam:
    """:func:`fuse_attention` then :func:`set_encoder_dtype`: what the regions stage runs."""
    fuse_attention(sam)
    return set_encoder_dtype(sam, dtype)
