"""CVD2014 (Nuutinen et al. 2016): 234 videos from 78 cameras in 6 tests.

``CVD2014_ratings/Realignment_MOS.csv`` is semicolon-separated with decimal commas
(Content;File_name;Original MOS;Realignment MOS;;;;) and ends in empty ';;;;' rows. The
videos are ``Test<k>/<content folder>/<File_name>.avi``; the content folder's spelling
varies between releases (``Talking_head``, ``Talking head``), so files are found by name
anywhere under the root. Realigned MOS is nominally 0–100 but can be slightly negative.
"""

from __future__ import annotations

from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import read_csv, require_columns

RATINGS = "CVD2014_ratings/Realignment_MOS.csv"


class CVD2014(DatasetAdapter):
    name = "cvd2014"
    modality = "video"
    layout = f"{RATINGS} (';', decimal comma) + Test<k>/<Content>/<File_name>.avi"
    scale = ScoreScale(-10.0, 100.0)
    options = {"score": "Realignment MOS"}

    def list_items(self) -> Listing:
        path = self.require_file(RATINGS)
        rows = [r for r in read_csv(path, delimiter=";") if r.get("File_name")]
        score_col = self.opts["score"]
        require_columns(rows, ["Content", "File_name", score_col], path)
        # One walk of the tree: File_name (case-insensitive) -> path relative to root.
        found = {
            p.stem.lower(): p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*.avi")
            if p.is_file()
        }
        listing = Listing()
        for row in rows:
            name, content = row["File_name"], row["Content"]
            test = "Test" + name[4:6].lstrip("0") if name.startswith("Test") else "Test"
            rel = found.get(name.lower()) or f"{test}/{content.replace(' ', '_')}/{name}.avi"
            score = row[score_col].replace(",", ".")
            self.make_item(listing, rel, score, group=f"{test}/{content}", source=name)
        return listing
