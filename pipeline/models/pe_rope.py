"""Which RoPE frequency each token of a PE vision tower gets (``clip.rope``).

PE (Meta's perception models; open_clip/timm's port) gives the CLS token position
(0, 0), i.e. no rotation, and patch ``i`` the frequency of its grid cell: timm's Eva skips
the prefix tokens and rotates the patches. The copy of PE in the Q-CLIP authors' release
(``model/core/vision_encoder/rope.py``, ``Rope2D.update_grid``) builds the same table but
*appends* the CLS row after the patches, while the sequence keeps CLS first. Token ``j``
then takes row ``j`` of ``[patch_0 .. patch_{N-1}, cls]``: CLS is rotated as patch 0,
patch ``i`` as patch ``i + 1``, and the last patch is not rotated. Checkpoints trained
with that code expect it, so ``clip.rope = "qclip-release"`` reproduces it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

ORDERS = ("pe", "qclip-release")


def set_rope_order(model: nn.Module, order: str) -> nn.Module:
    """Give ``model``'s PE vision tower the RoPE order ``order`` (in place; returns it)."""
    if order not in ORDERS:
        raise ValueError(f"unknown rope order {order!r} (choose from {', '.join(ORDERS)})")
    if order == "pe":
        return model
    trunk = getattr(getattr(model, "visual", None), "trunk", None)
    rope = getattr(trunk, "rope", None)
    if isinstance(rope, ReleaseOrder):
        return model
    if rope is None or getattr(trunk, "rope_mixed", False):
        raise ValueError(
            "clip.rope = qclip-release applies to PE towers (a timm Eva trunk with 2-D RoPE); "
            "this model has none"
        )
    for block in trunk.blocks:
        block.attn.num_prefix_tokens = 0  # rotate every token, CLS included
    trunk.rope = ReleaseOrder(rope, int(trunk.num_prefix_tokens))
    return model


class ReleaseOrder(nn.Module):
    """A timm rope module whose table gets the prefix (CLS) rows appended after the
    patches, unrotated (a module, not a patched method, so copies and ``.to()`` work)."""

    def __init__(self, rope: nn.Module, prefix: int):
        super().__init__()
        self.inner, self.prefix = rope, prefix
        if hasattr(rope, "feat_shape"):  # timm's Eva asks for it to pick get_embed's call
            self.feat_shape = rope.feat_shape

    def get_embed(self, *args, **kwargs) -> Tensor:
        emb = self.inner.get_embed(*args, **kwargs)  # [N, 2 * d]: sin | cos per patch
        half = emb.shape[-1] // 2
        cls = emb.new_zeros(self.prefix, 2 * half)
        cls[:, half:] = 1.0  # sin 0, cos 1: no rotation
        return torch.cat([emb, cls], dim=0)
