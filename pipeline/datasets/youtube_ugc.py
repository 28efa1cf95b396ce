"""YouTube-UGC (Wang et al. 2019): 20 s user videos, MOS 1–5 ('MOS full').

Scores: ``original_videos_MOS_for_YouTube_UGC_dataset.xlsx``, sheet ``MOS``, columns
``vid`` (e.g. ``Animation_1080P-05f8``) and ``MOS full``. Videos: either the originals
``original_videos/<Category>/<Res>P/<vid>.mkv`` or the flat H.264 transcodes
``original_videos_h264/<vid>_crf_10_ss_00_t_20.0.mp4`` most VQA code uses
(``--option videos=original|h264``; ``auto`` picks whichever folder exists).
"""

from __future__ import annotations

from qfeat.errors import OptionError
from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import read_xlsx, require_columns

MOS_XLSX = "original_videos_MOS_for_YouTube_UGC_dataset.xlsx"


def original_path(vid: str) -> str:
    """``Animation_1080P-05f8`` -> ``original_videos/Animation/1080P/Animation_1080P-05f8.mkv``."""
    category, _, rest = vid.partition("_")
    resolution = rest.split("-", 1)[0]
    return f"original_videos/{category}/{resolution}/{vid}.mkv"


def h264_path(vid: str) -> str:
    return f"original_videos_h264/{vid}_crf_10_ss_00_t_20.0.mp4"


class YouTubeUGC(DatasetAdapter):
    name = "youtube-ugc"
    modality = "video"
    layout = (
        f"{MOS_XLSX} (sheet MOS: vid, MOS full) + original_videos/<Category>/<Res>P/<vid>.mkv "
        "or original_videos_h264/<vid>_crf_10_ss_00_t_20.0.mp4"
    )
    scale = ScoreScale(1.0, 5.0)
    options = {"videos": "auto", "sheet": "MOS", "score": "MOS full"}

    def _videos(self) -> str:
        choice = self.opts["videos"]
        if choice == "auto":
            has_original = (self.root / "original_videos").is_dir()
            has_h264 = (self.root / "original_videos_h264").is_dir()
            return "h264" if has_h264 and not has_original else "original"
        if choice not in ("original", "h264"):
            raise OptionError("--option videos must be auto, original or h264")
        return choice

    def list_items(self) -> Listing:
        path = self.require_file(MOS_XLSX)
        rows = read_xlsx(path, sheet=self.opts["sheet"])
        require_columns(rows, ["vid", self.opts["score"]], path)
        to_path = h264_path if self._videos() == "h264" else original_path
        listing = Listing()
        for row in rows:
            vid = str(row["vid"]).strip()
            if not vid or vid == "nan":
                continue
            self.make_item(listing, to_path(vid), row[self.opts["score"]], group=vid, source=vid)
        return listing
