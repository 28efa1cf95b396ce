"""Dataset adapters: a registry from name to adapter class.

``open_dataset(name, root, options)`` is the one entry point the CLI and the runner use.
"""

from __future__ import annotations

from pathlib import Path

from qfeat.errors import DatasetError, OptionError
from qfeat.pipeline.datasets.base import (
    DatasetAdapter,
    Item,
    ItemProblem,
    Listing,
    ScoreScale,
)
from qfeat.pipeline.datasets.cvd2014 import CVD2014
from qfeat.pipeline.datasets.demo import DemoImages, DemoVideos
from qfeat.pipeline.datasets.generic import CsvTable, LabelsFile
from qfeat.pipeline.datasets.kadid import KADID
from qfeat.pipeline.datasets.koniq import KonIQ
from qfeat.pipeline.datasets.konvid import KoNViD
from qfeat.pipeline.datasets.live_qualcomm import LIVEQualcomm
from qfeat.pipeline.datasets.livec import LIVEChallenge
from qfeat.pipeline.datasets.livevqc import LIVEVQC
from qfeat.pipeline.datasets.lsvq import LSVQ
from qfeat.pipeline.datasets.spaq import SPAQ
from qfeat.pipeline.datasets.youtube_ugc import YouTubeUGC
from qfeat.pipeline.paths import dataset_root

REGISTRY: dict[str, type[DatasetAdapter]] = {
    cls.name: cls
    for cls in (
        KonIQ,
        SPAQ,
        LIVEChallenge,
        KADID,
        KoNViD,
        LIVEVQC,
        YouTubeUGC,
        LSVQ,
        CVD2014,
        LIVEQualcomm,
        LabelsFile,
        CsvTable,
        DemoImages,
        DemoVideos,
    )
}

__all__ = [
    "REGISTRY",
    "DatasetAdapter",
    "DatasetError",
    "Item",
    "ItemProblem",
    "Listing",
    "OptionError",
    "ScoreScale",
    "get_adapter",
    "open_dataset",
    "storage_name",
]


def get_adapter(name: str) -> type[DatasetAdapter]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise OptionError(
            f"unknown dataset '{name}'; known: {', '.join(sorted(REGISTRY))} "
            "(run `qfeat datasets` for layouts)"
        ) from None


def open_dataset(
    name: str, root: str | Path | None = None, options: dict[str, str] | None = None
) -> DatasetAdapter:
    """Instantiate adapter ``name`` on ``root`` (default ``$QFEAT_DATA_ROOT/<name>``)."""
    cls = get_adapter(name)
    return cls(dataset_root(name, root), options)


def storage_name(adapter: DatasetAdapter, name: str | None = None) -> str:
    """The name features and runs are stored under.

    Official adapters always use their own name; the generic ``labels`` and ``csv``
    adapters use ``--name`` or, by default, the root folder's name.
    """
    if not adapter.takes_name:
        if name and name != adapter.name:
            raise OptionError(
                f"--name is only for the labels and csv adapters, not '{adapter.name}'"
            )
        return adapter.name
    chosen = name or adapter.root.resolve().name
    if not chosen or "/" in chosen or chosen in (".", ".."):
        raise OptionError(f"--name must be a plain folder name, got '{chosen}'")
    return chosen
