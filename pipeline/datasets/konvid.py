"""KoNViD-1k (Hosu et al. 2017): 1,200 Flickr videos, 960x540, 8 s, MOS 1–5.

Two releases exist: the current one with ``KoNViD_1k_mos.csv`` (flickr_id, mos) and
``KoNViD_1k_videos/<flickr_id>.mp4``; and the older one with
``KoNViD_1k_attributes.csv`` (flickr_id, ..., file_name, MOS, ...) and files named
``<flickr_id>_original_centercrop_960x540_8s.mp4``. Metadata may sit at the root or in
``KoNViD_1k_metadata/``.
"""

from __future__ import annotations

from pathlib import Path

from qfeat.errors import DatasetError
from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import read_csv, require_columns

MOS_CSV = "KoNViD_1k_mos.csv"
ATTRIBUTES_CSV = "KoNViD_1k_attributes.csv"


def clean_id(value: str) -> str:
    """Flickr ids sometimes come back as floats ('4542323058.0') from spreadsheet tools."""
    return value[:-2] if value.endswith(".0") and value[:-2].isdigit() else value


class KoNViD(DatasetAdapter):
    name = "konvid"
    modality = "video"
    layout = f"{MOS_CSV} (flickr_id, mos) or {ATTRIBUTES_CSV} + KoNViD_1k_videos/<flickr_id>.mp4"
    scale = ScoreScale(1.0, 5.0)
    options = {"videos": "KoNViD_1k_videos"}

    def _find(self, name: str) -> Path | None:
        for path in (self.root / name, self.root / "KoNViD_1k_metadata" / name):
            if path.is_file():
                return path
        return None

    def list_items(self) -> Listing:
        videos = self.opts["videos"].strip("/")
        listing = Listing()
        if (path := self._find(MOS_CSV)) is not None:
            rows = read_csv(path)
            require_columns(rows, ["flickr_id", "mos"], path)
            for row in rows:
                fid = clean_id(row["flickr_id"])
                self.make_item(listing, f"{videos}/{fid}.mp4", row["mos"], group=fid, source=fid)
        elif (path := self._find(ATTRIBUTES_CSV)) is not None:
            rows = read_csv(path)
            require_columns(rows, ["flickr_id", "file_name", "MOS"], path)
            for row in rows:
                file_name = row["file_name"]
                if not Path(file_name).suffix:
                    file_name += ".mp4"
                self.make_item(
                    listing,
                    f"{videos}/{file_name}",
                    row["MOS"],
                    group=clean_id(row["flickr_id"]),
                    source=file_name,
                )
        else:
            raise DatasetError(
                f"konvid: neither {MOS_CSV} nor {ATTRIBUTES_CSV} found in {self.root} or "
                f"{self.root / 'KoNViD_1k_metadata'}; is --root the unpacked KoNViD-1k folder?"
            )
        return listing
