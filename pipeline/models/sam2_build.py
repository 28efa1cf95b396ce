"""SAM 2.1 through the optional ``sam2`` package: its model classes, configs and
automatic mask generator, unchanged.

``regions.model = sam2.1_hiera_t | sam2.1_hiera_s | sam2.1_hiera_b+ | sam2.1_hiera_l``
builds the package's own config (``configs/sam2.1/<model>.yaml``) with its hydra
instantiation and loads a local checkpoint file (the published ``sam2.1_hiera_*.pt``,
``{"model": state_dict}``) with ``weights_only=True``; nothing is downloaded.
``tiny-sam2.1`` is the hiera-t config shrunk to toy size (256-pixel input, 5 Hiera
blocks of width 8, 32-d prompts) with seeded random weights, for tests.
Masks come from :class:`sam2.automatic_mask_generator.SAM2AutomaticMaskGenerator` in
uncompressed-RLE records, the format SAM's records have, so the partition is the same.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import torch

from qfeat.errors import DatasetError
from qfeat.pipeline.models.no_init import skip_random_init
from qfeat.pipeline.regions import SAM2_CHECKPOINTS, TINY_SAM2

if TYPE_CHECKING:
    from qfeat.pipeline.models.sam import MaskParams

INSTALL = "pip install 'qfeat[sam2]' (the sam2, hydra-core and iopath packages)"
# what sam2.build_sam.build_sam2 adds for image use (apply_postprocessing=True)
POSTPROCESSING = [
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
]
TINY_SIZE = 256
_TINY = {"image_size": TINY_SIZE,
         "image_encoder.trunk.embed_dim": 8, "image_encoder.trunk.num_heads": 1,
         "image_encoder.trunk.stages": "[1,1,2,1]", "image_encoder.trunk.global_att_blocks": "[3]",
         "image_encoder.neck.backbone_channel_list": "[64,32,16,8]",
         "image_encoder.neck.d_model": 32, "image_encoder.neck.position_encoding.num_pos_feats": 32,
         "memory_attention.d_model": 32, "memory_attention.num_layers": 1,
         "memory_attention.layer.d_model": 32, "memory_attention.layer.dim_feedforward": 64,
         "memory_attention.layer.self_attention.embedding_dim": 32,
         "memory_attention.layer.cross_attention.embedding_dim": 32,
         "memory_attention.layer.cross_attention.kv_in_dim": 16,
         "memory_encoder.out_dim": 16, "memory_encoder.fuser.layer.dim": 32,
         "memory_encoder.mask_downsampler.embed_dim": 32,
         "memory_encoder.position_encoding.num_pos_feats": 16}  # fmt: skip


def require_sam2(model: str) -> None:
    """A DatasetError naming the extra when the ``sam2`` package is not importable."""
    try:
        import sam2  # noqa: F401
        import sam2.automatic_mask_generator  # noqa: F401
    except ImportError as exc:
        raise DatasetError(
            f"regions.model={model} needs the sam2 package ({exc}): {INSTALL}"
        ) from None


def config_name(model: str) -> str:
    """The package's config of ``model`` (``tiny-sam2.1``: hiera-t's)."""
    base = "sam2.1_hiera_t" if model == TINY_SAM2 else model
    return f"configs/sam2.1/{base}.yaml"


def _instantiate(model: str) -> torch.nn.Module:
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    require_sam2(model)
    overrides = list(POSTPROCESSING)
    if model == TINY_SAM2:
        overrides += [f"++model.{k}={v}" for k, v in _TINY.items()]
    cfg = compose(config_name=config_name(model), overrides=overrides)
    OmegaConf.resolve(cfg)
    return instantiate(cfg.model, _recursive_=True)


@functools.cache
def tiny_architecture() -> str:
    """The toy SAM 2.1's architecture hash (its cache identity with the seed)."""
    from qfeat.pipeline.models.architecture import architecture_hash

    return architecture_hash(lambda: _instantiate(TINY_SAM2))


def build_sam2(model: str, checkpoint: str = "", seed: int = 0) -> torch.nn.Module:
    """A SAM 2.1 ``SAM2Base`` in eval mode on the CPU: ``tiny-sam2.1`` (seeded random,
    ``checkpoint`` ignored) or a published size loaded strictly from ``checkpoint``
    (``"random"``: seeded random weights, for benchmarks)."""
    from pathlib import Path

    from qfeat.pipeline.models.pe_meta import unwrap

    if model == TINY_SAM2 or (checkpoint == "random" and model in SAM2_CHECKPOINTS):
        torch.manual_seed(seed)  # "random": seeded random weights (benchmarks only)
        return _instantiate(model).eval()
    if model not in SAM2_CHECKPOINTS:
        raise DatasetError(
            f"unknown SAM 2.1 model '{model}' (known: {', '.join(SAM2_CHECKPOINTS)})"
        )
    path = Path(checkpoint) if checkpoint else None
    if path is None or not path.is_file():
        raise DatasetError(
            f"SAM 2.1 checkpoint not found at '{checkpoint}'; pass "
            f"--set regions.checkpoint=/path/{SAM2_CHECKPOINTS[model]}"
        )
    with skip_random_init():  # every parameter comes from the file (a strict load)
        sam = _instantiate(model)
    sam.load_state_dict(unwrap(torch.load(path, map_location="cpu", weights_only=True)))
    return sam.eval()


@functools.cache
def sam2_shapes(model: str) -> tuple[dict[str, tuple[int, ...]], int]:
    """``(name -> shape, parameters)`` of ``model``, built without its random init (Hiera
    reads a tensor's value while it is built, so the meta device cannot build it)."""
    with skip_random_init(), torch.random.fork_rng(devices=[]):
        module = _instantiate(model)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    return shapes, sum(p.numel() for p in module.parameters())


def mask_generator(model: torch.nn.Module, params: MaskParams) -> Any:
    """The package's ``SAM2AutomaticMaskGenerator`` with the regions stage's settings
    (one crop layer, no hole filling, uncompressed-RLE records as SAM's)."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    generator = SAM2AutomaticMaskGenerator(model, **params.kwargs())
    side = int(model.image_size)  # the predictor assumes 1024: its feature sizes follow
    generator.predictor._bb_feat_sizes = [(side // s, side // s) for s in (4, 8, 16)]
    return generator


def generate(generator: Any, image, dtype: torch.dtype) -> list[dict[str, Any]]:
    """Records of one ``uint8 [H, W, 3]`` image, under autocast when ``dtype`` is not
    float32 (bf16/fp16 on CUDA, as the package's own examples run it)."""
    device = generator.predictor.model.device.type
    with torch.inference_mode(), torch.autocast(device, dtype, enabled=dtype != torch.float32):
        return generator.generate(image)
