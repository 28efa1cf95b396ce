"""The built-in synthetic sets ``demo`` (images) and ``demo-video``, generated on first use."""

from __future__ import annotations

import logging

from qfeat.errors import DatasetError
from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import read_csv, require_columns
from qfeat.pipeline.demo import images, videos
from qfeat.pipeline.demo.common import is_generated

log = logging.getLogger(__name__)


class _Demo(DatasetAdapter):
    scale = ScoreScale(1.0, 5.0)
    _generator = None
    _path_col = ""

    @property
    def data_version(self) -> int:
        return self._generator.VERSION

    def prepare(self) -> None:
        if is_generated(self.root, self.data_version):
            return
        log.info("generating the %s dataset in %s (first use)", self.name, self.root)
        try:
            self._generator.generate(self.root)
        except FileExistsError as exc:
            raise DatasetError(str(exc)) from exc

    def list_items(self) -> Listing:
        path = self.require_file("mos.csv")
        rows = read_csv(path)
        require_columns(rows, [self._path_col, "content", "mos"], path)
        listing = Listing()
        for row in rows:
            self.make_item(listing, row[self._path_col], row["mos"], group=row["content"])
        return listing


class DemoImages(_Demo):
    name = "demo"
    modality = "image"
    layout = "generated: images/<content>_<kind><level>.png + mos.csv (504 images, 24 contents)"
    _generator = images
    _path_col = "image"


class DemoVideos(_Demo):
    name = "demo-video"
    modality = "video"
    layout = "generated: videos/<content>_<kind><level>.mp4 + mos.csv, labels.txt (156 clips)"
    _generator = videos
    _path_col = "video"
