"""LSVQ (Ying et al. 2021): 38,811 videos; official train / test / test-1080p splits.

``labels_train_test.csv`` (name, p1, p2, p3, height, width, mos_p1..3, mos, ...,
is_test, is_valid) gives train (is_test False) and test (True); ``labels_test_1080p.csv``
(same columns without is_test) is the test-1080p split. ``name`` has no extension and
includes the batch folder: ``yfcc-batch1/722`` -> ``yfcc-batch1/722.mp4``. MOS 0–100.
"""

from __future__ import annotations

from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import read_csv, require_columns

TRAIN_TEST = "labels_train_test.csv"
TEST_1080P = "labels_test_1080p.csv"


class LSVQ(DatasetAdapter):
    name = "lsvq"
    modality = "video"
    layout = f"{TRAIN_TEST} (name, ..., mos, ..., is_test) + {TEST_1080P} + <name>.mp4"
    scale = ScoreScale(0.0, 100.0)
    has_official_splits = True

    def list_items(self) -> Listing:
        listing = Listing()
        path = self.require_file(TRAIN_TEST)
        rows = read_csv(path)
        require_columns(rows, ["name", "mos", "is_test"], path)
        for row in rows:
            split = "test" if row["is_test"].strip().lower() in ("true", "1") else "train"
            self._add(listing, row, split)
        hd = self.root / TEST_1080P
        if hd.is_file():
            rows = read_csv(hd)
            require_columns(rows, ["name", "mos"], hd)
            for row in rows:
                self._add(listing, row, "test-1080p")
        return listing

    def _add(self, listing: Listing, row: dict[str, str], split: str) -> None:
        name = row["name"]
        self.make_item(listing, f"{name}.mp4", row["mos"], split=split, group=name)
