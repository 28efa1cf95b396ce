"""What a run's ``config.json`` holds, as one typed object.

:class:`RunConfig` is the only code that knows the file's keys: the trainers build one
and :class:`qfeat.trainers.runfolder.RunFolder` writes and reads it; ``evaluate``,
``predict`` and ``report`` use its fields. The file keeps the layout runs have always
had (so older run folders read back unchanged):

- ``trainer``, ``dataset``, ``preset``, ``seed``, ``splits``, ``official_splits``,
  ``device``, ``items`` (usable items trained on);
- the trainer's resolved hyper-parameters under its own name (``"rsa": {...}``);
- ``cache``: ``{"dir": cache folder, stage: fingerprint, ...}``;
- ``stages``: per stage ``{"fingerprint", "model", "config"}``
  (:func:`qfeat.trainers.runinfo.stage_record`), what ``qfeat predict`` reruns live;
- ``mos_range``: ``{"min", "max", "higher_is_better"}``, the dataset's native scale;
- ``basis``: the coherent set of cached stages read (id, preset, ``state`` complete or
  partial, items, of, fingerprints; runs from before it have none);
- ``modality``: ``image`` or ``video`` (absent in runs made before it);
- trainer-specific keys (rsa: ``head``; scma: ``mode``, ``adapted_blocks``, ``clip``,
  ``init``; probe: ``features``), kept in :attr:`RunConfig.details` and read by the
  trainer's own modules only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qfeat.errors import DatasetError

COMMON = (
    "trainer",
    "dataset",
    "preset",
    "stages",
    "cache",
    "splits",
    "official_splits",
    "seed",
    "device",
    "items",
    "mos_range",
    "basis",
    "modality",
)


@dataclass(frozen=True)
class RunConfig:
    trainer: str
    dataset: str
    preset: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_dir: str | None = None
    fingerprints: dict[str, str] = field(default_factory=dict)
    splits: int | None = None
    official_splits: bool | None = None
    seed: int | None = None
    device: str | None = None
    items: int | None = None
    mos_range: dict[str, Any] | None = None
    # the coherent set of cached stages read (:meth:`qfeat.cache.basis.Basis.record`):
    # id, preset, state (complete | partial), items, of, fingerprints
    basis: dict[str, Any] | None = None
    modality: str | None = None  # image or video (runs made before it: the trainer's)

    def detail(self, name: str, default: Any = None) -> Any:
        """One of the trainer's own keys (rsa ``head``, scma ``mode``, ...); each trainer's
        module reads its own (e.g. :func:`qfeat.trainers.rsa_train.head_of`)."""
        return self.details.get(name, default)

    def setting(self, name: str) -> Any:
        """One of the trainer's hyper-parameters; a DatasetError when it is not recorded."""
        if name not in self.settings:
            raise DatasetError(
                f"the run's config.json records no {self.trainer}.{name}: the run folder is "
                "from another qfeat version or was edited; retrain it"
            )
        return self.settings[name]

    def fingerprint(self, stage: str) -> str | None:
        """The fingerprint of the cached ``stage`` the run was trained on, if recorded."""
        return self.all_fingerprints().get(stage)

    def all_fingerprints(self) -> dict[str, str]:
        """Stage name -> fingerprint of every cached stage the run records."""
        out = {k: str(v) for k, v in self.fingerprints.items()}
        for name, record in self.stages.items():
            if record.get("fingerprint"):
                out.setdefault(name, str(record["fingerprint"]))
        return out

    # --- the file ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """``config.json``'s content."""
        out: dict[str, Any] = {
            "trainer": self.trainer,
            "dataset": self.dataset,
            "preset": self.preset,
            self.trainer: dict(self.settings),
            **self.details,
            "stages": self.stages,
            "cache": {"dir": self.cache_dir, **self.fingerprints},
            "splits": self.splits,
            "official_splits": self.official_splits,
            "seed": self.seed,
            "device": self.device,
            "items": self.items,
            "mos_range": self.mos_range,
        }
        if self.basis is not None:
            out["basis"] = self.basis
        if self.modality is not None:
            out["modality"] = self.modality
        return out

    @classmethod
    def from_json(cls, data: Any, source: str = "config.json") -> RunConfig:
        """The config ``data`` (``config.json``'s parsed content) describes; a
        DatasetError naming ``source`` when it is not a run's config."""
        if not isinstance(data, dict) or not isinstance(data.get("trainer"), str):
            raise DatasetError(f"{source} is not a qfeat run config (no trainer recorded)")
        trainer = data["trainer"]
        cache = data.get("cache") if isinstance(data.get("cache"), dict) else {}
        return cls(
            trainer=trainer,
            dataset=str(data.get("dataset", "?")),
            preset=data.get("preset"),
            settings=dict(data.get(trainer) or {}),
            details={k: v for k, v in data.items() if k not in COMMON and k != trainer},
            stages=dict(data.get("stages") or {}),
            cache_dir=cache.get("dir"),
            fingerprints={k: str(v) for k, v in cache.items() if k != "dir"},
            splits=data.get("splits"),
            official_splits=data.get("official_splits"),
            seed=data.get("seed"),
            device=data.get("device"),
            items=data.get("items"),
            mos_range=data.get("mos_range"),
            basis=data.get("basis") if isinstance(data.get("basis"), dict) else None,
            modality=data.get("modality"),
        )

    def resume_spec(self) -> dict[str, Any]:
        """What must match for a run folder to be resumed with this config: all but the
        device and the cache folder's spelling (its stages are named by fingerprint)."""
        spec = self.to_json()
        del spec["device"]
        spec.pop("modality", None)  # follows from the trainer and the dataset
        spec["cache"] = dict(self.fingerprints)
        return spec
