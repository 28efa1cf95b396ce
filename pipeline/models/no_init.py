"""Building a model whose every parameter a weights file is about to replace.

A module's constructor fills its parameters with random values; for PE-Core-L
(open_clip's text tower, timm's Eva trunk) that is 14.6 s of the 15.4 s its
architecture took to build on two slow CPU cores (benchmarks/model_build.py), thrown
away by the load that follows. Inside :func:`skip_random_init` those fills leave the
(uninitialised) tensors as they are. Use it only where the load that follows is strict:
a parameter missing from the file must be refused, since it would hold whatever the
memory held.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

import torch

# the random fills; constant_/zeros_/ones_ cost nothing and stay
RANDOM_FILLS = (
    "uniform_",
    "normal_",
    "trunc_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "orthogonal_",
)
# modules that bound torch.nn.init's fills to their own names at import
# (nn.MultiheadAttention, nn.Transformer): patching torch.nn.init alone misses them
BOUND_FILLS = ("torch.nn.modules.activation", "torch.nn.modules.transformer")
# timm's own truncated normal (Eva, ViT: trunc_normal_ and trunc_normal_tf_ call it),
# patched where timm is loaded: a library that builds timm models has imported it
# (open_clip does at import), and importing it here would add 2 s to SAM's build
TIMM_FILL = ("timm.layers.weight_init", "_trunc_normal_")


def _unchanged(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return tensor


def _targets() -> list[tuple[ModuleType, str]]:
    """Every (module, name) that holds a random fill a constructor calls."""
    targets = [(torch.nn.init, name) for name in RANDOM_FILLS]
    for path in BOUND_FILLS:
        module = importlib.import_module(path)
        targets += [(module, name) for name in RANDOM_FILLS if hasattr(module, name)]
    timm_fills = sys.modules.get(TIMM_FILL[0])
    if timm_fills is not None:
        targets.append((timm_fills, TIMM_FILL[1]))
    return targets


@contextmanager
def skip_random_init() -> Iterator[None]:
    """While inside, the random fills of ``torch.nn.init`` (also where torch's own
    modules bound them to their names) and, once timm is loaded, timm's truncated
    normal do nothing."""
    targets = _targets()
    saved = [(module, name, getattr(module, name)) for module, name in targets]
    try:
        for module, name in targets:
            setattr(module, name, _unchanged)
        yield
    finally:
        for module, name, fill in saved:
            setattr(module, name, fill)
