"""What a run's ``config.json`` records about its inputs, so a run can be used later
without its cache: the cached stages it read and the training dataset's score scale.

- ``stages``: per stage ``{"fingerprint", "model", "config"}`` — the fingerprint of the
  cache folder, the model identity (name plus weights sha256, hub revision or seed) and
  the fully resolved stage config including ``seed``; ``qfeat predict`` reruns the
  stages live with exactly these and refuses a model whose identity differs.
- ``mos_range``: ``{"min", "max", "higher_is_better"}`` of the dataset's native MOS
  scale (the adapter's range, which ``mos_01`` is normalised with).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def stage_record(stages: dict[str, Any]) -> dict[str, Any]:
    """Fingerprint, model identity and config of every cached stage the run read."""
    return {
        name: {
            "fingerprint": s.fingerprint,
            "model": s.manifest["model"],
            "config": s.manifest["config"],
        }
        for name, s in stages.items()
    }


def dataset_scale(cache_dir: Path, dataset: str, items: pd.DataFrame) -> dict[str, Any] | None:
    """The dataset's native score scale: as the adapter declared it (stored with the
    cache's item table), else recovered from the items (caches written before that)."""
    from qfeat.cache.items import read_scale

    return read_scale(cache_dir, dataset) or mos_range(items)


def mos_range(items: pd.DataFrame) -> dict[str, Any] | None:
    """The native scale ``{"min", "max", "higher_is_better"}`` behind ``mos_01``.

    Adapters store ``mos_01 = (mos - min) / (max - min)`` (or ``1 -`` that when lower
    is better), so a straight line through the ``(mos, mos_01)`` pairs gives the scale
    back: ``min``/``max`` are the MOS values where the line crosses 0 and 1. None when
    the items cannot tell (fewer than two distinct finite MOS values).
    """
    if not {"mos", "mos_01"} <= set(items.columns):
        return None
    mos = items["mos"].to_numpy(dtype=np.float64)
    m01 = items["mos_01"].to_numpy(dtype=np.float64)
    keep = np.isfinite(mos) & np.isfinite(m01)
    mos, m01 = mos[keep], m01[keep]
    if mos.size < 2 or np.ptp(mos) == 0:
        return None
    slope, intercept = np.polyfit(mos, m01, 1)
    if not np.isfinite(slope) or abs(slope) < 1e-12:
        return None
    ends = sorted(((0.0 - intercept) / slope, (1.0 - intercept) / slope))
    return {
        "min": float(np.round(ends[0], 9)),
        "max": float(np.round(ends[1], 9)),
        "higher_is_better": bool(slope > 0),
    }


def normalise_score(score: float, scale: dict[str, Any] | None) -> float | None:
    """``score`` on 0..1 like ``mos_01`` (1 = best), clipped; None without a scale."""
    if scale is None or score is None or not np.isfinite(score):
        return None
    span = float(scale["max"]) - float(scale["min"])
    if span <= 0:
        return None
    t = (float(score) - float(scale["min"])) / span
    if not scale.get("higher_is_better", True):
        t = 1.0 - t
    return float(np.clip(t, 0.0, 1.0))


def cache_gone(config, cache_dir: Path | None = None, name: str = "the run") -> str | None:
    """One line when stage folders the run was trained on (``config``: its
    :class:`~qfeat.trainers.runconfig.RunConfig`) are no longer in ``cache_dir`` (default:
    the cache it recorded), else None."""
    where = Path(cache_dir or config.cache_dir or ".").expanduser()
    missing = [
        f"{stage} {fp}"
        for stage, fp in config.all_fingerprints().items()
        if not (where / config.dataset / stage / fp / "manifest.json").is_file()
    ]
    if not missing:
        return None
    preset = (config.basis or {}).get("preset") or config.preset
    return (
        f"{name} was trained on cached {config.dataset} stages that are gone from {where} "
        f"({', '.join(missing)}); recompute them with `qfeat features {config.dataset} "
        f"--preset {preset}` and the stage settings in its config.json"
    )
