"""LIVE Video Quality Challenge (Sinno & Bovik 2018): 585 mobile videos, MOS 0–100.

``data.mat`` holds ``video_list`` (585x1 cell of names such as 'A001.mp4') and ``mos``
(585x1); the videos are in ``Video/``.
"""

from __future__ import annotations

from qfeat.errors import DatasetError
from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import as_float_list, as_str_list, mat_var, read_mat


class LIVEVQC(DatasetAdapter):
    name = "livevqc"
    modality = "video"
    layout = "data.mat (video_list, mos) + Video/A001.mp4 ..."
    scale = ScoreScale(0.0, 100.0)

    def list_items(self) -> Listing:
        path = self.require_file("data.mat")
        mat = read_mat(path)
        names = as_str_list(mat_var(mat, "video_list", path))
        scores = as_float_list(mat_var(mat, "mos", path))
        if len(names) != len(scores):
            raise DatasetError(f"{path}: {len(names)} names but {len(scores)} scores")
        listing = Listing()
        for name, mos in zip(names, scores, strict=True):
            self.make_item(listing, f"Video/{name}", mos, group=name, source=name)
        return listing
