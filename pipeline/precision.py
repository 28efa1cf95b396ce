"""Which dtype a stage's model runs in on a device.

A stage's ``dtype`` setting (``float32`` | ``bfloat16`` | ``float16``) is what it runs in
on CUDA. On the CPU every stage runs float32, except a stage named in :data:`CPU_BF16`
on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX), where ``bfloat16`` is used
as set: a stage is listed there only after ``benchmarks`` measured it faster on such a
CPU with equal results within the tolerance benchmarks/RESULTS.md states.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# stages whose bf16 on a native-bf16 CPU measured faster and equal (benchmarks/RESULTS.md)
CPU_BF16: frozenset[str] = frozenset()


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True when /proc/cpuinfo lists AVX512-BF16 or AMX-BF16 (False where unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                  if ln.startswith("flags")), [])  # fmt: skip
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def run_dtype(setting: str, device: str, stage: str) -> torch.dtype:
    """The dtype ``stage`` runs in on ``device`` given its ``dtype`` ``setting``."""
    if str(device).startswith("cuda"):
        return DTYPES[setting]
    if setting == "bfloat16" and stage in CPU_BF16 and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32
