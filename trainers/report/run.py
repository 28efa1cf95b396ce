"""A run folder as the report reads it, and the cached stages the run was trained on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from qfeat.cache.reader import CacheMissing, Stage, open_stage
from qfeat.errors import DatasetError


@dataclass
class Run:
    dir: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    predictions: pd.DataFrame

    @property
    def trainer(self) -> str:
        return str(self.config.get("trainer", self.metrics.get("trainer", "?")))

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset", "?"))

    def fingerprints(self) -> dict[str, str]:
        """Stage name -> fingerprint of every cached stage the run records."""
        out = {k: str(v) for k, v in self.config.get("cache", {}).items() if k != "dir"}
        for name, record in self.config.get("stages", {}).items():
            out.setdefault(name, str(record.get("fingerprint")))
        return out


def load_run(run_dir: Path) -> Run:
    """The run's config, metrics and predictions; a DatasetError names what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DatasetError(f"no run folder at {run_dir} (give a run folder or a run name)")
    files = {}
    for name in ("config.json", "metrics.json", "predictions.csv"):
        path = run_dir / name
        if not path.is_file():
            raise DatasetError(f"{run_dir} is not a complete qfeat run folder: no {name}")
        files[name] = path
    try:
        config = json.loads(files["config.json"].read_text())
        metrics = json.loads(files["metrics.json"].read_text())
        predictions = pd.read_csv(files["predictions.csv"], dtype={"item_id": str, "split": str})
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read the run folder {run_dir}: {exc}") from exc
    missing = {"item_id", "split", "mos", "pred"} - set(predictions.columns)
    if missing:
        raise DatasetError(f"{files['predictions.csv']} lacks the columns {sorted(missing)}")
    return Run(run_dir, config, metrics, predictions)


def resolve_cache_dir(run: Run, override: Path | None) -> Path:
    """``override`` when given, else the cache the run was trained from (config.json),
    else ``$QFEAT_CACHE_DIR``."""
    from qfeat.pipeline.paths import cache_dir

    if override is not None:
        return Path(override).expanduser()
    recorded = run.config.get("cache", {}).get("dir")
    if recorded and Path(recorded).expanduser().is_dir():
        return Path(recorded).expanduser()
    return cache_dir()


def open_recorded(cache_dir: Path, run: Run, stage: str) -> Stage:
    """The stage folder with the fingerprint the run was trained on (the newest complete
    one when the run does not record it)."""
    fingerprint = run.fingerprints().get(stage)
    try:
        return open_stage(cache_dir, run.dataset, stage, fingerprint)
    except CacheMissing as exc:
        raise CacheMissing(
            f"the run's {stage} features ({run.dataset}, fingerprint {fingerprint}) are not in "
            f"{cache_dir}: pass the cache the run was trained from with --cache-dir ({exc})"
        ) from exc
