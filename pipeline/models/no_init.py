"""Building a model whose every parameter a weights file is about to replace.

A module's constructor fills its parameters with random values (``torch.nn.init``);
for PE-Core-L that is about 5 s of the 7.7 s its architecture takes to build on two
CPU cores (benchmarks/model_build.py), thrown away by the load that follows. Inside
:func:`skip_random_init` those fills leave the (uninitialised) tensors as they are.
Use it only where the load that follows is strict: a parameter missing from the file
must be refused, since it would hold whatever the memory held.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

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


def _unchanged(tensor: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    return tensor


@contextmanager
def skip_random_init() -> Iterator[None]:
    """While inside, ``torch.nn.init``'s random fills do nothing (module constructors
    look them up at call time, e.g. ``nn.Linear.reset_parameters``)."""
    saved = {name: getattr(torch.nn.init, name) for name in RANDOM_FILLS}
    try:
        for name in RANDOM_FILLS:
            setattr(torch.nn.init, name, _unchanged)
        yield
    finally:
        for name, fill in saved.items():
            setattr(torch.nn.init, name, fill)
