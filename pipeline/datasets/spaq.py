"""SPAQ (Fang et al. 2020): 11,125 smartphone photos, MOS 0–100, no official split."""

from __future__ import annotations

from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import read_xlsx, require_columns

MOS_FILE = "Annotations/MOS and Image attribute scores.xlsx"


class SPAQ(DatasetAdapter):
    name = "spaq"
    modality = "image"
    layout = f"'{MOS_FILE}' (Image name, MOS, Brightness, ...) + TestImage/00001.jpg ..."
    scale = ScoreScale(0.0, 100.0)

    def list_items(self) -> Listing:
        path = self.require_file(MOS_FILE)
        rows = read_xlsx(path)
        require_columns(rows, ["Image name", "MOS"], path)
        listing = Listing()
        for row in rows:
            name = str(row["Image name"]).strip()
            self.make_item(listing, f"TestImage/{name}", row["MOS"], group=name, source=name)
        return listing
