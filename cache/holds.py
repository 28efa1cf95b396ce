"""Runs hold the cached stages they were trained on, so ``qfeat cache gc`` keeps them.

A trainer registers its run when it starts (before any split is trained)::

    <cache-dir>/<dataset>/.runs/<run name>-<hash of its folder>.json
        {"run": name, "path": run folder, "trainer": ..., "fingerprints": {stage: fp}}

written atomically. A registration holds its fingerprints while its run folder exists
(its ``config.json`` or ``resume.json``); one whose run folder is gone holds nothing and
is itself garbage. ``gc`` removes a held folder only with ``--include-protected``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qfeat.cache.fingerprint import sha256_text
from qfeat.cache.layout import write_json_atomic

RUNS = ".runs"
RUN_FILES = ("config.json", "resume.json")  # either: the run folder still exists


@dataclass(frozen=True)
class Hold:
    """One registration: run ``run`` (folder ``path``) holds ``fingerprints`` of ``dataset``."""

    file: Path
    dataset: str
    run: str
    path: Path
    fingerprints: dict[str, str]

    @property
    def alive(self) -> bool:
        return any((self.path / name).is_file() for name in RUN_FILES)


def register_run(
    cache_dir: Path, dataset: str, run_dir: Path, *, trainer: str, fingerprints: dict[str, str]
) -> Path:
    """Record that the run in ``run_dir`` reads ``fingerprints`` of ``dataset``'s cache."""
    run_dir = Path(run_dir).resolve()
    name = f"{run_dir.name}-{sha256_text(str(run_dir))[:8]}.json"
    path = Path(cache_dir) / dataset / RUNS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "run": run_dir.name,
        "path": str(run_dir),
        "trainer": trainer,
        "fingerprints": dict(sorted(fingerprints.items())),
        "registered": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json_atomic(path, record)
    return path


def holds(cache_dir: Path) -> list[Hold]:
    """Every registration in the cache (readable ones), the dead included."""
    import json

    out = []
    for file in sorted(Path(cache_dir).glob(f"*/{RUNS}/*.json")):
        try:
            data = json.loads(file.read_text())
            fingerprints = {str(k): str(v) for k, v in dict(data["fingerprints"]).items()}
            out.append(Hold(file, file.parent.parent.name, str(data["run"]), Path(data["path"]),
                            fingerprints))  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def held(cache_dir: Path) -> dict[tuple[str, str, str], list[str]]:
    """``(dataset, stage, fingerprint) -> names of the live runs that hold it``."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for hold in holds(cache_dir):
        if hold.alive:
            for stage, fingerprint in hold.fingerprints.items():
                out.setdefault((hold.dataset, stage, fingerprint), []).append(hold.run)
    return out
