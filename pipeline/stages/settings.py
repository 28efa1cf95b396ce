"""Every stage's settings with every default: the one place a stage default lives.

The defaults are the ``paper`` preset's values (a preset only overrides them, and may
leave a section out). A stage reads its resolved settings as ``self.cfg`` (a plain dict
with every field), and the fingerprint is computed from that dict, so changing a default
here changes the fingerprint of every cache it applies to.
"""

from __future__ import annotations

from dataclasses import dataclass

from qfeat.pipeline.regions import SAM_MODELS
from qfeat.pipeline.regions.partition import OVERLAP_RULES
from qfeat.pipeline.settings import Settings
from qfeat.pipeline.video.sampling import STRATEGIES

DESCRIBE_MODES = ("generate", "logprob")
DESCRIBE_DTYPES = ("float32", "bfloat16", "float16")
CLIP_DTYPES = ("float32", "bfloat16")
MAX_FRAMES = 512


@dataclass(frozen=True)
class RegionsSettings(Settings):
    """Segment Anything's automatic mask generator, then the partition."""

    section = "regions"
    model: str = "vit_h"  # tiny | vit_b | vit_l | vit_h | sam2.1_hiera_t|s|b+|l | tiny-sam2.1
    checkpoint: str = ""  # path to the SAM checkpoint (.pth, loaded with weights_only)
    points_per_side: int = 32  # point grid per side (>= 1)
    pred_iou_thresh: float = 0.88  # [0, 1]; 0 disables the filter
    stability_score_thresh: float = 0.95  # [0, 1]; 0 disables the filter
    box_nms_thresh: float = 0.7  # [0, 1]; 1 keeps overlapping boxes
    max_regions: int = 16  # K regions kept, plus one "rest" region
    min_area_frac: float = 0.005  # [0, 1): regions owning less of the image are dropped
    max_side: int = 1024  # long side of the image as segmented, pixels
    batch_size: int = 8  # images per image-encoder batch
    points_per_batch: int = 256  # point prompts decoded at once (speed/memory only)
    overlap: str = "smaller_on_top"  # or "larger_wins"
    batched: bool = True  # false = stock SamAutomaticMaskGenerator image by image
    dtype: str = "bfloat16"  # image encoder on CUDA: float32 | bfloat16 | float16; CPU: float32

    def validate(self) -> None:
        self.one_of("model", SAM_MODELS)
        self.at_least(1, "points_per_side", "max_regions", "max_side")
        self.at_least(1, "batch_size", "points_per_batch")
        self.in_range(0.0, 1.0, "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh")
        self.in_range(0.0, 1.0, "min_area_frac", closed=False)
        self.one_of("overlap", OVERLAP_RULES)
        self.one_of("dtype", DESCRIBE_DTYPES)


@dataclass(frozen=True)
class DescribeSettings(Settings):
    """A vision-language model describes and rates each region."""

    section = "describe"
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"  # tiny | a local folder | a hub id
    revision: str = ""  # hub revision ("" = main); ignored for local folders
    dtype: str = "bfloat16"  # float32 | bfloat16 | float16
    mode: str = "generate"  # generate (JSON answer) | logprob (level-word probabilities)
    max_new_tokens: int = 96  # generation bound per region
    min_new_tokens: int = 0  # >0 only for tests: random toy models may stop at once
    batch_size: int = 16  # regions per generate() call
    max_side: int = 448  # long side of the region view given to the model, pixels
    margin: float = 0.1  # context around the region's box, as a fraction of its size

    def validate(self) -> None:
        self.one_of("mode", DESCRIBE_MODES)
        self.one_of("dtype", DESCRIBE_DTYPES)
        self.at_least(1, "max_new_tokens", "batch_size", "max_side")
        self.at_least(0, "min_new_tokens", "margin")


@dataclass(frozen=True)
class TextSettings(Settings):
    """The open_clip text tower embeds each region's description and ratings."""

    section = "text"
    model: str = "ViT-B-16"  # tiny | an open_clip model name | local-dir:/open_clip/folder
    pretrained: str = ""  # local open_clip weights file, or "random"
    ratings: bool = True  # embed the rating words too (false: the --no-ratings ablation)


@dataclass(frozen=True)
class BackboneSettings(Settings):
    """A frozen feature map per image."""

    section = "backbone"
    model: str = "resnet50"  # tiny | resnet18 | resnet50 | clip:<name> | timm:<name>
    weights: str = ""  # local .pth/.safetensors file, or "random"
    input_size: int = 384  # images are squashed to input_size x input_size

    def validate(self) -> None:
        self.at_least(1, "input_size")


@dataclass(frozen=True)
class FramesSettings(Settings):
    """Frame-difference sampling on a low-resolution pass over every frame."""

    section = "frames"
    strategy: str = "difference"  # uniform | random | difference | cumulative | mixed | linspace
    num_frames: int = 8  # T frames chosen per video
    lowres: int = 64  # short side of the low-resolution difference pass, pixels

    def validate(self) -> None:
        self.one_of("strategy", STRATEGIES)
        self.in_range(1, MAX_FRAMES, "num_frames")
        self.in_range(8, 2160, "lowres")


@dataclass(frozen=True)
class ClipSettings(Settings):
    """CLIP features of the chosen frames, split at vision block L - K."""

    section = "clip"
    model: str = "PE-Core-L-14-336"  # tiny | tiny-vit | an open_clip name | local-dir:/folder
    pretrained: str = ""  # local open_clip weights file, or "random"
    adapted_blocks: int = 6  # K: hidden states entering block L - K are cached
    dtype: str = "bfloat16"  # autocast on CUDA; CPU runs float32
    # PE's RoPE order: "pe" (CLS unrotated, as PE was trained) or "qclip-release" (the
    # Q-CLIP authors' copy, CLS row appended after the patches; pipeline/models/pe_rope.py)
    rope: str = "pe"

    def validate(self) -> None:
        self.at_least(1, "adapted_blocks")
        self.one_of("dtype", CLIP_DTYPES)
        self.one_of("rope", ("pe", "qclip-release"))
