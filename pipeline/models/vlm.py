"""Vision-language models for the ``describe`` stage: resolve, build (tiny) and load.

Every model, tiny or real, is loaded the same way: ``AutoProcessor`` and
``AutoModelForImageTextToText`` ``from_pretrained`` on a folder or hub id. Nothing is
downloaded unless the user gave a hub id; a local folder is read with
``local_files_only=True``.

``tiny``: a Qwen2-VL built at toy size from the real transformers classes with seeded
random weights (text: 2 layers, width 64, 4 heads of 16 with mrope sections 2+3+3;
vision: 1 block, width 32, 14-pixel patches merged 2x2), and a byte-level BPE tokenizer
of ``TINY_VOCAB`` tokens trained with the ``tokenizers`` library on a fixed corpus, with
Qwen's special tokens and a Qwen-style chat template. Its image processor keeps pictures
between 28x28 and 56x56 pixels (1 to 4 image tokens) so CPU runs are fast. The folder is
written once per seed under :func:`models_dir` (``tiny-qwen2-vl-seed<seed>``), atomically
(temporary folder, then ``os.replace``), and is a pure function of the seed and the
library versions and ``TINY_RECIPE``, which is what makes the describe stage's identity
``model_identity("tiny-qwen2-vl", seed=..., recipe=TINY_RECIPE)`` honest. A
``qfeat-tiny.json`` marker records the recipe; a stale folder is rebuilt.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from qfeat.errors import DatasetError
from qfeat.pipeline.models.source import parse_source

log = logging.getLogger(__name__)

TINY_NAME = "tiny-qwen2-vl"
TINY_RECIPE = 1  # bump when the tiny build below changes (forces a rebuild)
TINY_VOCAB = 512
MARKER = "qfeat-tiny.json"
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Qwen2's pre-tokenizer split (the same regex transformers' Qwen2Tokenizer uses).
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# A Qwen-style chat template: string or [{"type": "image"} | {"type": "text", ...}] content.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Fixed training text of the tiny tokenizer (never derived from the prompt, so editing
# the prompt does not silently change the "same" tiny model).
_CORPUS = (
    "The picture is one region of a photograph; pixels outside the region are grey. "
    "Describe what the region shows in a few words, and rate the region's colour, noise, "
    "artifact (compression artifacts), blur and overall quality, each with exactly one of "
    "the words bad, poor, fair, good, excellent (excellent = no visible problem, "
    "bad = severe problem). Answer with JSON only, in this form: "
    '{"content": "<a few words>", "colour": "<level>", "noise": "<level>", '
    '"artifact": "<level>", "blur": "<level>", "overall": "<level>"} '
    "Rate the region's colour, noise, artifact (compression artifacts), blur and overall "
    "quality with the words bad, poor, fair, good, excellent. "
    '{"content": "a blue sky with clouds", "colour": "good", "noise": "poor", '
    '"artifact": "fair", "blur": "good", "overall": "fair"} '
    "The colour quality of this region is bad. The noise quality of this region is poor. "
    "The artifact quality of this region is fair. The blur quality of this region is good. "
    "The overall quality of this region is excellent. "
    "a person, a tree, grass, water, a building, a road, a car, a face, text, the rest "
    "of the image, grey background, stripes, rings, discs, a checker pattern, gradient."
)


def models_dir() -> Path:
    """Where built models live: ``$QFEAT_MODELS_DIR`` or ``~/.cache/qfeat/models``."""
    value = os.environ.get("QFEAT_MODELS_DIR")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "qfeat" / "models"


def tiny_model_dir(seed: int, root: Path | None = None) -> Path:
    return (root or models_dir()) / f"{TINY_NAME}-seed{seed}"


def hub_cached(repo_id: str, revision: str | None = None) -> bool:
    """Whether the local HF cache holds ``repo_id``'s config (never touches the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    found = try_to_load_from_cache(repo_id, "config.json", revision=revision or None)
    return isinstance(found, str)


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value."""
    values = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any((v or "").strip().lower() in ("1", "true", "yes", "on") for v in values)


def _marker(seed: int) -> dict[str, Any]:
    import tokenizers
    import torch
    import transformers

    return {
        "name": TINY_NAME,
        "recipe": TINY_RECIPE,
        "seed": seed,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "torch": torch.__version__.split("+")[0],
    }


def _tiny_tokenizer():
    """A Qwen2 fast tokenizer over a ``TINY_VOCAB``-token byte-level BPE (deterministic)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([_CORPUS] * 8, trainer=trainer)
    tok = Qwen2TokenizerFast(
        tokenizer_object=bpe,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        model_input_names=["input_ids", "attention_mask"],
        chat_template=CHAT_TEMPLATE,
    )
    return tok


def _tiny_processor(tokenizer):
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    pixels = {"min_pixels": 28 * 28, "max_pixels": 56 * 56}
    return Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**pixels),
        chat_template=CHAT_TEMPLATE,
    )


def _tiny_model(tokenizer, seed: int):
    import torch
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        # head_dim 16: the three mrope sections (time, height, width) sum to 16 / 2
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [2, 3, 3],
        },
        # a wider init than 0.02 spreads the random logits, so greedy decoding does not
        # hinge on near-ties (batched == one-by-one, stable golden outputs)
        "initializer_range": 0.2,
        "bos_token_id": None,
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision = {
        "depth": 1,
        "embed_dim": 32,
        "hidden_size": 64,
        "mlp_ratio": 2,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )
    return model


def quiet_transformers() -> None:
    """No "Loading weights" / "Writing model shards" bars from transformers and the hub:
    they would interleave with qfeat's own progress (and flood job logs); qfeat reports
    what it loads itself."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    disable_progress_bars()


def build_tiny_vlm(folder: Path, seed: int) -> Path:
    """Write the tiny Qwen2-VL (model, tokenizer, processor) to ``folder`` atomically."""
    quiet_transformers()
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tokenizer = _tiny_tokenizer()
        processor = _tiny_processor(tokenizer)
        model = _tiny_model(tokenizer, seed)
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(_marker(seed), indent=1, sort_keys=True) + "\n")
        if _tiny_is_current(folder, seed):  # another worker built it meanwhile: keep theirs
            return folder
        if folder.exists():  # stale recipe: move it away first (os.replace needs an empty target)
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.replace(folder, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not _tiny_is_current(folder, seed):  # another process did not win the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("built tiny vision-language model (seed %d) in %s", seed, folder)
    return folder


def _tiny_is_current(folder: Path, seed: int) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()) == _marker(seed)
    except (OSError, ValueError):
        return False


def ensure_tiny_vlm(seed: int, root: Path | None = None) -> Path:
    """The tiny model's folder for ``seed``, built on first use (and after recipe changes)."""
    folder = tiny_model_dir(seed, root)
    if not _tiny_is_current(folder, seed):
        build_tiny_vlm(folder, seed)
    return folder


def check_source(model: str, revision: str | None = None) -> None:
    """Raise DatasetError unless ``model`` is ``tiny``, a local folder or a usable hub id."""
    source = parse_source(model, allow_hub=True)
    if model == "tiny" or source.kind == "folder":
        return
    if source.kind != "hub":
        raise DatasetError(
            f"describe model '{model}' not found; pass --set describe.model="
            "/path/to/local/model_folder or a hub id"
        )
    if hub_offline() and not hub_cached(model, revision):
        raise DatasetError(
            f"describe model '{model}' is not in the local Hugging Face cache and "
            "HF_HUB_OFFLINE=1 forbids downloading it; download it first (huggingface-cli "
            "download), or pass --set describe.model=/path/to/local/model_folder"
        )


def load_vlm(
    source: str | Path,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    revision: str | None = None,
):
    """``(processor, model)`` in eval mode from a local folder or a hub id.

    ``dtype`` (``float32`` | ``bfloat16`` | ``float16``) applies on CUDA only; CPU runs
    float32 (bf16 matmuls are slow on CPU). The tokenizer pads on the left, as batched
    generation needs.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    quiet_transformers()
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise DatasetError(
            f"describe.dtype '{dtype}' is not one of {', '.join(dtypes)}; "
            "pass --set describe.dtype=bfloat16"
        )
    local = Path(source).expanduser()
    if local.is_dir():
        source, kwargs = str(local), {"local_files_only": True}
    else:
        source, kwargs = str(source), {"revision": revision}
    torch_dtype = dtypes[dtype] if device.startswith("cuda") else torch.float32
    processor = AutoProcessor.from_pretrained(source, **kwargs)
    model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch_dtype, **kwargs)
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor, model.to(device).eval()
