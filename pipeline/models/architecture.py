"""Architecture fingerprints of toy models (the ``tiny`` preset's seeded random models).

A seeded random model is identified in a cache manifest by its name, seed and a short
hash of its architecture, so a changed toy configuration (depth, width, patch size...)
never reuses features computed with the old one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from qfeat.cache.fingerprint import canonical_json, sha256_text


def architecture_hash(build: Callable[[], nn.Module]) -> str:
    """Short hash of the names and shapes of the parameters and buffers of ``build()``.

    The module is built under a forked torch RNG, so the caller's random state is
    untouched. Shapes follow every size in the configuration; library versions, which
    the manifest records separately, do not enter.
    """
    with torch.random.fork_rng(devices=[]):
        module = build()
    spec = [[name, list(tensor.shape)] for name, tensor in module.state_dict().items()]
    return sha256_text(canonical_json(spec))[:12]
