"""The cached stages a run was trained on, as the report opens them."""

from __future__ import annotations

from pathlib import Path

from qfeat.cache.reader import CacheMissing, Stage, open_stage
from qfeat.trainers.runfolder import RunFolder


def resolve_cache_dir(run: RunFolder, override: Path | None) -> Path:
    """``override`` when given, else the cache the run was trained from (config.json),
    else ``$QFEAT_CACHE_DIR``."""
    from qfeat.pipeline.paths import cache_dir

    if override is not None:
        return Path(override).expanduser()
    recorded = run.config.cache_dir
    if recorded and Path(recorded).expanduser().is_dir():
        return Path(recorded).expanduser()
    return cache_dir()


def open_recorded(cache_dir: Path, run: RunFolder, stage: str) -> Stage:
    """The stage folder with the fingerprint the run was trained on (the newest complete
    one when the run does not record it)."""
    fingerprint = run.config.fingerprint(stage)
    try:
        return open_stage(cache_dir, run.config.dataset, stage, fingerprint)
    except CacheMissing as exc:
        raise CacheMissing(
            f"the run's {stage} features ({run.config.dataset}, fingerprint {fingerprint}) are "
            f"not in {cache_dir}: pass the cache the run was trained from with --cache-dir ({exc})"
        ) from exc
