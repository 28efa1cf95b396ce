"""CLIP vision towers split at block L-K: the cached path must equal ``encode_image``."""

from __future__ import annotations

import pytest
import torch

from qfeat.pipeline.models import clip_build as cb
from qfeat.pipeline.models import clip_split as cs

pytest.importorskip("open_clip")
pytest.importorskip("timm")

TINY = ("tiny-vit", "tiny-pe")


@pytest.fixture(scope="module")
def tiny_models():
    """Both tiny presets, built once for the module."""
    return {name: cb.build_clip(name, seed=0, tiny=True) for name in TINY}


def _pixels(info: cb.PreprocessInfo, batch: int = 2, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *info.size, generator=gen)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """fp32 agreement to rtol 1e-4 (atol scaled to the embedding size)."""
    atol = 1e-6 * float(expected.abs().max()) + 1e-9
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("name", TINY)
def test_tiny_shapes_and_preprocess(tiny_models, name):
    model, info = tiny_models[name]
    assert cs.num_blocks(model) == {"tiny-vit": 4, "tiny-pe": 2}[name]
    assert info.size == (32, 32)
    patch = {"tiny-vit": 8, "tiny-pe": 4}[name]
    assert cs.num_tokens(model) == (32 // patch) ** 2 + 1  # patches + class token
    assert cs.hidden_width(model) == 64
    if name == "tiny-pe":
        assert cb.qfeat_tiny_pe_core_patch4_32.__name__ == cb.TINY_PE_TIMM_NAME
        assert info.mean == (0.5, 0.5, 0.5) and info.resize_mode == "squash"
        assert model.visual.trunk.rope is not None and model.visual.trunk.attn_pool is not None
    else:
        assert info.mean[0] == pytest.approx(0.48145466)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("k", [1, 2, "all"])
def test_split_matches_encode_image(tiny_models, name, k):
    model, info = tiny_models[name]
    k = cs.num_blocks(model) if k == "all" else k
    x = _pixels(info)
    with torch.no_grad():
        ref = model.encode_image(x, normalize=False)
    pooled, hidden = cs.encode_with_hidden(model, x, k)
    assert pooled.shape == ref.shape == (2, 32)
    assert hidden.shape == (2, cs.num_tokens(model), cs.hidden_width(model))
    assert hidden.dtype == torch.float32
    _close(pooled, ref)
    with torch.no_grad():
        _close(cs.finish_from_hidden(model, hidden, k), ref)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("k", [1, 3])
def test_hidden_is_output_of_block_before_split(tiny_models, name, k):
    """hidden == output of block L-k-1, as the libraries' forward_intermediates report it."""
    model, info = tiny_models[name]
    k = min(k, cs.num_blocks(model) - 1)  # tiny-pe has two blocks
    x = _pixels(info)
    _, hidden = cs.encode_with_hidden(model, x, k)
    index = cs.num_blocks(model) - k - 1
    with torch.no_grad():
        if name == "tiny-vit":
            out = model.visual.forward_intermediates(
                x, indices=[index], output_fmt="NLC", output_extra_tokens=True
            )
            patches, prefix = out["image_intermediates"][0], out["image_intermediates_prefix"][0]
        else:
            ((patches, prefix),) = model.visual.trunk.forward_intermediates(
                x,
                indices=[index],
                output_fmt="NLC",
                return_prefix_tokens=True,
                intermediates_only=True,
            )
    _close(hidden, torch.cat([prefix, patches], dim=1))


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("k", [0, -1, 5, 2.0, True])
def test_k_out_of_range(tiny_models, name, k):
    model, info = tiny_models[name]
    x = _pixels(info, batch=1)
    with pytest.raises(ValueError):
        cs.encode_with_hidden(model, x, k)
    hidden = torch.zeros(1, cs.num_tokens(model), cs.hidden_width(model))
    with pytest.raises(ValueError):
        cs.finish_from_hidden(model, hidden, k)


def test_bad_hidden_shape(tiny_models):
    model, _ = tiny_models["tiny-pe"]
    with pytest.raises(ValueError, match="hidden"):
        cs.finish_from_hidden(model, torch.zeros(1, 16, 64), 2)


@pytest.fixture(scope="module")
def sharp_pe(tiny_models):
    """tiny-pe with 30x qkv weights: peaked attention, so the rotary embedding matters
    (with the seeded init attention is nearly uniform and rope changes outputs by ~1e-4)."""
    import copy

    model = copy.deepcopy(tiny_models["tiny-pe"][0])
    with torch.no_grad():
        for blk in model.visual.trunk.blocks:
            blk.attn.qkv.weight.mul_(30.0)
    return model


@pytest.mark.parametrize("k", [1, 2])
def test_pe_rope_is_passed_to_remaining_blocks(tiny_models, sharp_pe, k):
    """The split equals encode_image with peaked attention; without rope it does not."""
    info = tiny_models["tiny-pe"][1]
    x = _pixels(info)
    with torch.no_grad():
        ref = sharp_pe.encode_image(x)
        pooled, hidden = cs.encode_with_hidden(sharp_pe, x, k)
        _close(pooled, ref)
        _close(cs.finish_from_hidden(sharp_pe, hidden, k), ref)
        trunk = sharp_pe.visual.trunk
        depth = cs.num_blocks(sharp_pe)
        no_rope = cs._eva_run_blocks(trunk, hidden, None, depth - k, depth)
        wrong = cs._eva_head(sharp_pe.visual, no_rope)
    rel = float((wrong - ref).norm() / ref.norm())
    assert rel > 1e-2


@pytest.mark.parametrize("name", TINY)
def test_finish_trains_last_blocks(tiny_models, name):
    """Autograd through finish_from_hidden: train mode, grad checkpointing, same values."""
    model, info = tiny_models[name]
    k = cs.num_blocks(model) - 1  # leaves block 0 frozen out of the graph
    pooled, hidden = cs.encode_with_hidden(model, _pixels(info), k)
    model.train()
    model.set_grad_checkpointing(True)
    try:
        hidden = hidden.clone().requires_grad_(True)
        out = cs.finish_from_hidden(model, hidden, k)
        out.square().sum().backward()
    finally:
        model.set_grad_checkpointing(False)
        model.eval()
    _close(out.detach(), pooled)
    blocks = cs.vision_blocks(model.visual)
    assert hidden.grad is not None and hidden.grad.abs().sum() > 0
    assert all(p.grad is not None for p in blocks[-1].parameters())
    assert all(p.grad is None for p in blocks[0].parameters())
    model.zero_grad(set_to_none=True)


def test_tiny_build_is_deterministic(tiny_models):
    model0, info = tiny_models["tiny-pe"]
    again, _ = cb.build_clip("tiny-pe", seed=0)
    other, _ = cb.build_clip("tiny-pe", seed=1)
    state0, state_again, state_other = (m.state_dict() for m in (model0, again, other))
    assert all(torch.equal(state0[key], state_again[key]) for key in state0)
    assert not all(torch.equal(state0[key], state_other[key]) for key in state0)
    x = _pixels(info)
    with torch.no_grad():
        torch.testing.assert_close(again.encode_image(x), model0.encode_image(x), rtol=0, atol=0)
        assert not torch.allclose(other.encode_image(x), model0.encode_image(x))


def test_build_keeps_caller_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    cb.build_clip("tiny-vit", seed=5)
    torch.testing.assert_close(torch.rand(3), expected)


def test_tiny_text_tower(tiny_models):
    import open_clip

    for name in TINY:
        model, _ = tiny_models[name]
        tokens = open_clip.get_tokenizer(cb.OPEN_CLIP_NAMES[name])(["a sharp photo", "blur"])
        with torch.no_grad():
            assert model.encode_text(tokens).shape == (2, 32)


def test_build_errors(tmp_path):
    with pytest.raises(ValueError, match="tiny"):
        cb.build_clip("ViT-B-16", tiny=True)
    with pytest.raises(ValueError, match="unknown"):
        cb.build_clip("no-such-model")
    with pytest.raises(FileNotFoundError):
        cb.build_clip("ViT-B-16", pretrained="openai")  # a tag: never downloaded
    with pytest.raises(ValueError, match="hub"):
        cb.build_clip("hf-hub:timm/PE-Core-L-14-336")
    with pytest.raises(FileNotFoundError):
        cb.build_clip(f"local-dir:{tmp_path / 'missing'}")
    assert cb.tiny_name("tiny") == "tiny-pe"


def test_tiny_weights_file_roundtrip(tmp_path, tiny_models):
    model, info = tiny_models["tiny-vit"]
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    loaded, _ = cb.build_clip("tiny-vit", pretrained=str(path), seed=7)
    x = _pixels(info)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x))


def test_local_dir_model(tmp_path, tiny_models):
    """An open_clip hub-style folder (config + weights + preprocess) loads offline."""
    from tests.fixtures.open_clip_folder import tiny_open_clip_folder

    model, info = tiny_models["tiny-pe"]
    source = tiny_open_clip_folder(
        tmp_path, preprocess={"mean": [0.5] * 3}, state_dict=model.state_dict()
    )
    loaded, loaded_info = cb.build_clip(source)
    assert loaded_info.mean == (0.5, 0.5, 0.5) and loaded_info.size == info.size
    x = _pixels(info)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(x), model.encode_image(x))


# ----------------------------------------------------------- other tower variants


def _vit(**kwargs):
    from open_clip.transformer import VisionTransformer

    torch.manual_seed(0)
    args = dict(image_size=32, patch_size=8, width=32, layers=3, heads=2, mlp_ratio=2.0)
    return VisionTransformer(**{**args, "output_dim": 16, **kwargs}).eval()


@pytest.mark.parametrize(
    "variant",
    [
        {"attentional_pool": True, "attn_pooler_queries": 4, "attn_pooler_heads": 2},
        {"final_ln_after_pool": True, "pool_type": "avg"},
        {"no_ln_pre": True, "patch_dropout": 0.5},  # patch dropout is off in eval
        {"qk_norm": True, "ls_init_value": 0.1},  # CustomResidualAttentionBlock
    ],
)
def test_open_clip_vit_variants(variant):
    visual = _vit(**variant)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = visual(x)
        for k in (1, 3):
            pooled, hidden = cs.encode_with_hidden(visual, x, k)
            assert hidden.shape == (2, 17, 32)
            _close(pooled, ref)
            _close(cs.finish_from_hidden(visual, hidden, k), ref)


def test_eva_register_tokens_and_mixed_rope(tiny_models):
    """A TimmModel whose Eva trunk has register tokens and depth-dependent (mixed) rope."""
    import copy

    from timm.models.eva import Eva

    model, info = tiny_models["tiny-pe"]
    visual = copy.deepcopy(model.visual)
    torch.manual_seed(0)
    visual.trunk = Eva(
        img_size=32,
        patch_size=8,
        embed_dim=64,
        depth=3,
        num_heads=2,
        num_classes=32,
        global_pool="map",
        attn_type="rope",
        use_rot_pos_emb=True,
        rope_type="mixed",
        num_reg_tokens=2,
        use_abs_pos_emb=False,
        use_pre_transformer_norm=True,
    ).eval()
    assert cs.num_tokens(visual) == 16 + 3
    x = _pixels(info)
    with torch.no_grad():
        ref = visual(x)
        pooled, hidden = cs.encode_with_hidden(visual, x, 2)
        _close(pooled, ref)
        _close(cs.finish_from_hidden(visual, hidden, 2), ref)


# ----------------------------------------------------------- real configs


def test_real_pe_core_tiny_config():
    """The real PE-Core-T-16-384 architecture (seeded random weights, ~0.6 s to build)."""
    model, info = cb.build_clip("PE-Core-T-16-384", seed=0)
    assert (cs.num_blocks(model), cs.hidden_width(model), cs.num_tokens(model)) == (12, 192, 577)
    assert info.size == (384, 384) and info.std == (0.5, 0.5, 0.5)
    x = _pixels(info, batch=1)
    with torch.no_grad():
        ref = model.encode_image(x)
        pooled, hidden = cs.encode_with_hidden(model, x, 6)
        _close(pooled, ref)
        _close(cs.finish_from_hidden(model, hidden, 6), ref)


def test_real_pe_core_large_shapes_on_meta():
    """PE-Core-L-14-336 on the meta device (no memory, no weights): L, width, tokens."""
    import open_clip
    from open_clip.model import CustomTextCLIP

    assert "PE-Core-L-14-336" in open_clip.list_models()
    cfg = open_clip.get_model_config("PE-Core-L-14-336")
    cfg.pop("custom_text")
    with torch.device("meta"):
        model = CustomTextCLIP(**cfg).eval()
    assert (cs.num_blocks(model), cs.hidden_width(model), cs.num_tokens(model)) == (24, 1024, 577)
    x = torch.empty(2, 3, 336, 336, device="meta")
    pooled, hidden = cs.encode_with_hidden(model, x, 6)
    assert hidden.shape == (2, 577, 1024) and pooled.shape == (2, 1024)
    assert cs.finish_from_hidden(model, hidden, 6).shape == (2, 1024)


@pytest.mark.parametrize("k", [1, 2])
def test_qclip_release_rope_order(tiny_models, sharp_pe, k):
    """clip.rope = qclip-release: token j takes row j of [patches, CLS] (checked side by
    side with the authors' Rope2D in a scratch run, see docs/method.md); the split path still
    equals encode_image, and the outputs differ from PE's own order."""
    import copy

    from timm.layers.pos_embed_sincos import apply_rot_embed_cat

    from qfeat.pipeline.models.pe_rope import ReleaseOrder, set_rope_order

    info = tiny_models["tiny-pe"][1]
    release = set_rope_order(copy.deepcopy(sharp_pe), "qclip-release")
    trunk, own = release.visual.trunk, sharp_pe.visual.trunk
    assert isinstance(trunk.rope, ReleaseOrder) and set_rope_order(release, "qclip-release")
    table, patches = trunk.rope.get_embed(), own.rope.get_embed()
    assert table.shape[0] == cs.num_tokens(release) == patches.shape[0] + 1
    q = torch.randn(2, 4, table.shape[0], table.shape[1] // 2, generator=torch.Generator())
    rotated = apply_rot_embed_cat(q, table)
    _close(rotated[:, :, :-1], apply_rot_embed_cat(q[:, :, :-1], patches))  # CLS as patch 0
    _close(rotated[:, :, -1], q[:, :, -1])  # the last patch is not rotated
    assert all(b.attn.num_prefix_tokens == 0 for b in trunk.blocks)
    x = _pixels(info)
    with torch.no_grad():
        ref, other = release.encode_image(x), sharp_pe.encode_image(x)
        pooled, hidden = cs.encode_with_hidden(release, x, k)
        _close(pooled, ref)
        _close(cs.finish_from_hidden(release, hidden, k), ref)
    assert float((ref - other).norm() / other.norm()) > 1e-2
    with pytest.raises(ValueError, match="PE towers"):
        set_rope_order(copy.deepcopy(tiny_models["tiny-vit"][0]), "qclip-release")


def test_meta_pe_checkpoint_is_converted_on_load(tiny_models, tmp_path):
    """clip.pretrained may be Meta's own PE file (perception_models layout, as the Q-CLIP
    release loads it, inside a {"state_dict": ...} with DataParallel prefixes): the model
    built from it is the one it was written from."""
    import copy

    from qfeat.pipeline.models.pe_meta import load_meta_pe
    from tests.fixtures.pe_meta import meta_state_dict

    model = copy.deepcopy(tiny_models["tiny-pe"][0])
    with torch.no_grad():  # Meta's conv1 and proj have no bias
        model.visual.trunk.patch_embed.proj.bias.zero_()
        model.visual.trunk.head.bias.zero_()
    meta = meta_state_dict(model)
    assert "visual.conv1.weight" in meta and "transformer.resblocks.0.attn.in_proj_weight" in meta
    path = tmp_path / "PE-Core-tiny.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in meta.items()}}, path)
    loaded, _ = cb.build_clip("tiny-pe", str(path), seed=7)  # another seed: weights from file
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, msg=key)
    x = _pixels(tiny_models["tiny-pe"][1])
    with torch.no_grad():
        _close(loaded.encode_image(x), model.encode_image(x))
    wrong = {**meta, "visual.proj": meta["visual.proj"][:, :16]}
    torch.save(wrong, path)
    with pytest.raises(ValueError, match="shapes differ"):
        load_meta_pe(copy.deepcopy(model), path)
