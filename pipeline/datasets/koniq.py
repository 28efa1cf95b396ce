"""KonIQ-10k (Hosu et al. 2020): 10,073 in-the-wild images.

Release: ``koniq10k_scores_and_distributions.csv`` (image_name, c1..c5 vote counts,
c_total, MOS on 1–5, SD, MOS_zscore on about 0–100) and the images in ``1024x768/`` or
``512x384/``. The official split is the ``set`` column (training / validation / test,
7058 / 1000 / 2015) of ``koniq10k_distributions_sets.csv`` from the authors' repository;
put it beside the scores file. That file's own ``MOS`` column is on the 0–100 scale.
"""

from __future__ import annotations

from pathlib import Path

from qfeat.errors import DatasetError, OptionError
from qfeat.pipeline.datasets.base import DatasetAdapter, Listing, ScoreScale
from qfeat.pipeline.datasets.tables import read_csv, require_columns

SCORES = "koniq10k_scores_and_distributions.csv"
SETS = "koniq10k_distributions_sets.csv"
SPLIT_NAMES = {"training": "train", "validation": "val", "test": "test"}
SCALES = {"MOS": ScoreScale(1.0, 5.0), "MOS_zscore": ScoreScale(0.0, 100.0)}


class KonIQ(DatasetAdapter):
    name = "koniq"
    modality = "image"
    layout = f"{SCORES} + 1024x768/<image_name> (or 512x384/); split: {SETS} (set column) beside it"
    scale = SCALES["MOS"]
    has_official_splits = True
    options = {"images": "auto", "score": "MOS"}

    def _find(self, name: str) -> Path | None:
        # The scores zip unpacks either flat or into a folder of the same name.
        for path in (self.root / name, self.root / Path(name).stem / name):
            if path.is_file():
                return path
        return None

    def _image_folder(self) -> str:
        folder = self.opts["images"].strip("/")
        if folder != "auto":
            return folder
        for candidate in ("1024x768", "512x384"):
            if (self.root / candidate).is_dir():
                return candidate
        return "1024x768"

    def list_items(self) -> Listing:
        score_col = self.opts["score"]
        if score_col not in SCALES:
            raise OptionError(
                f"--option score must be MOS (1–5) or MOS_zscore (0–100), not {score_col!r}"
            )
        scores_path, sets_path = self._find(SCORES), self._find(SETS)
        splits: dict[str, str] = {}
        if sets_path is not None:
            set_rows = read_csv(sets_path)
            require_columns(set_rows, ["image_name", "set"], sets_path)
            splits = {r["image_name"]: SPLIT_NAMES.get(r["set"], r["set"]) for r in set_rows}
        if scores_path is not None:
            rows = read_csv(scores_path)
            require_columns(rows, ["image_name", score_col], scores_path)
            scale = SCALES[score_col]
        elif sets_path is not None:
            # Only the split file: its MOS column is the 0–100 z-score MOS.
            rows, score_col, scale = set_rows, "MOS", SCALES["MOS_zscore"]
            require_columns(rows, ["MOS"], sets_path)
        else:
            raise DatasetError(
                f"koniq: neither {SCORES} nor {SETS} found in {self.root}; unpack "
                "koniq10k_scores_and_distributions.zip there or pass --root"
            )
        folder = self._image_folder()
        listing = Listing()
        for row in rows:
            name = row["image_name"]
            self.make_item(
                listing,
                f"{folder}/{name}",
                row[score_col],
                split=splits.get(name),
                group=name,
                scale=scale,
                source=name,
            )
        return listing
